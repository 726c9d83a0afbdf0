"""Audit ledger archiving: store size and timings for archiving half of a ledger, JSON out.

    .venv/bin/python benchmarks/audit_archive.py [--entries 10000] [--backend sqlite postgres]

For each backend, builds a ledger of ``--entries`` admin entries with the real
``AuditLedger`` (a checkpoint every 500 entries and one exactly at the half), then archives
the first half (``archive_ledger``: write + fsync + re-check the file, record it, delete in
batches of 1000) and reports one JSON object per backend: rows and bytes of
``audit_entries`` before, after deleting and after ``VACUUM`` (SQLite: ``dbstat`` pages and
the database file; PostgreSQL: ``pg_total_relation_size``, which shrinks only with
``VACUUM FULL``), the archive file's size, the time to archive, and the time to verify the
live chain alone and the whole history with the archive. PostgreSQL runs in a fresh database
on ``--postgres`` (the local server with trust auth), dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmeco.governance.audit import AuditLedger
from llmeco.governance.audit.archive import archive_ledger, table_size, vacuum
from llmeco.governance.audit.archive_file import ArchiveFile
from llmeco.governance.audit.verify import verify_ledger
from llmeco.settings import Settings


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server ``admin_url`` points at (dropped afterwards)."""
    import psycopg

    name = f"llmeco_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(ledger: AuditLedger, n: int, start: int) -> None:
    futures = [ledger.record_admin("bench", "key.create", {"n": start + i}) for i in range(n)]
    for f in futures:
        f.result(120)


def run(backend: str, entries: int, home: Path, url: str) -> dict[str, Any]:
    settings = Settings(
        home=home, database_url=url, audit_checkpoint_entries=500, audit_checkpoint_seconds=3600
    )
    half = entries // 2
    with AuditLedger.open(settings) as ledger:
        t0 = time.perf_counter()
        fill(ledger, half, 0)
        ledger.checkpoint_now()
        fill(ledger, entries - half, half)
        ledger.checkpoint_now()
        build_s = time.perf_counter() - t0
        key, store = ledger.signer.public_key, ledger.store
        before = table_size(store)
        t0 = time.perf_counter()
        verify_full_before = verify_ledger(store, key)
        verify_before_s = time.perf_counter() - t0

        out = home / "archive-1.jsonl"
        t0 = time.perf_counter()
        result = archive_ledger(ledger, out, before_checkpoint=half)
        archive_s = time.perf_counter() - t0
        after = table_size(store)
        t0 = time.perf_counter()
        vacuum(store)
        vacuum_s = time.perf_counter() - t0
        vacuumed = table_size(store)

        t0 = time.perf_counter()
        live = verify_ledger(store, key)
        verify_live_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        whole = verify_ledger(store, key, archives=[ArchiveFile.open(out)])
        verify_whole_s = time.perf_counter() - t0
    assert verify_full_before.ok and live.ok and whole.ok, (live.problems, whole.problems)
    return {
        "backend": backend,
        "entries": entries,
        "archived": result.count,
        "archive_file_bytes": out.stat().st_size,
        "store_before": before.to_dict(),
        "store_after_delete": after.to_dict(),
        "store_after_vacuum": vacuumed.to_dict(),
        "build_s": round(build_s, 3),
        "archive_s": round(archive_s, 3),
        "vacuum_s": round(vacuum_s, 3),
        "verify_all_live_before_s": round(verify_before_s, 3),
        "verify_live_after_s": round(verify_live_s, 3),
        "verify_whole_history_s": round(verify_whole_s, 3),
        "verified_live_entries": live.entries,
        "verified_whole_entries": whole.entries,
    }


def main() -> int:
    """Run the measurement for each backend and print one JSON object per line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument(
        "--backend", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"]
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    for backend in args.backend:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            if backend == "sqlite":
                print(json.dumps(run(backend, args.entries, home, "")), flush=True)
                continue
            with postgres_database(args.postgres) as url:
                pg_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
                print(json.dumps(run(backend, args.entries, home, pg_url)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
