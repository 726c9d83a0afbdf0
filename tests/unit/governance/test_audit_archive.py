"""Archiving the audit ledger: half of a 10,000-entry ledger to a file and out of the store,
then verify (live chain from the boundary; whole history with the archives), tampered
archives named, proofs of archived and live entries, appending and archiving again —
on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmeco.errors import InvalidRequest, NotFound
from llmeco.governance.audit import AuditLedger, RequestRecord, chain_hash
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.archive import archive_ledger, table_size, vacuum
from llmeco.governance.audit.archive_file import ArchiveFile, archive_rows
from llmeco.governance.audit.checkpoint import canonical_json
from llmeco.governance.audit.merkle import Frontier, consistency_proof, inclusion_proof, leaf_hash
from llmeco.governance.audit.partial import MissingLeaf, PartialTree
from llmeco.governance.audit.verify import (
    make_consistency_proof,
    make_inclusion_proof,
    read_entry,
    verify_ledger,
    verify_proof,
)
from llmeco.settings import Settings


def open_ledger(home: Path, url: str | None = None, every: int = 500) -> AuditLedger:
    settings = Settings(
        home=home,
        database_url=url or "",
        audit_checkpoint_entries=every,
        audit_checkpoint_seconds=3600,
    )
    return AuditLedger.open(settings)


def fill(ledger: AuditLedger, n: int, start: int = 0) -> None:
    futures = [ledger.record_admin("admin", "key.create", {"n": start + i}) for i in range(n)]
    for f in futures:
        f.result(60)


def verify(ledger: AuditLedger, *archives: Path) -> dict[str, Any]:
    opened = [ArchiveFile.open(p) for p in archives]
    return verify_ledger(ledger.store, ledger.signer.public_key, archives=opened).to_dict()


def proof_ok(ledger: AuditLedger, proof: dict[str, object]) -> bool:
    ok, reason = verify_proof(proof, ledger.signer.public_key)
    assert ok, reason
    return ok


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite in the test's home; a fresh PostgreSQL database otherwise."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.slow
def test_archive_half_of_a_10000_entry_ledger(tmp_path: Path, database: str | None) -> None:
    a1, a2 = tmp_path / "a1.jsonl", tmp_path / "a2.jsonl"
    with open_ledger(tmp_path / "home", database) as ledger:
        fill(ledger, 5000)
        ledger.checkpoint_now()
        fill(ledger, 5000, 5000)
        ledger.checkpoint_now()
        before = table_size(ledger.store)
        assert before.rows == 10_000 and before.table_bytes > 0

        result = archive_ledger(ledger, a1, before_checkpoint=5000)
        assert (result.first_seq, result.last_seq, result.count) == (1, 5000, 5000)
        assert result.deleted == 5000 and result.record_seq == 10_001
        after = table_size(ledger.store)
        assert after.rows == 5001 and after.table_bytes <= before.table_bytes
        vacuum(ledger.store)  # PostgreSQL gives the space back only now
        assert table_size(ledger.store).table_bytes < 0.7 * before.table_bytes
        record = read_entry(ledger.store, result.record_seq)["payload"]
        assert record["action"] == "audit.archive"
        assert record["details"]["sha256"] == result.sha256 == ArchiveFile.open(a1).sha256
        assert record["details"]["last_seq"] == 5000 and record["details"]["entries"] == 5000

        live = verify(ledger)
        assert live["ok"], live["problems"]
        assert live["entries"] == 5001 and live["archived_up_to"] == 5000
        assert live["unchecked_checkpoints"] > 0  # the ones inside 1..4999 need the archive
        whole = verify(ledger, a1)
        assert whole["ok"], whole["problems"]
        assert whole["entries"] == 10_001 and whole["archived_checked"] == 5000
        assert whole["unchecked_checkpoints"] == 0 and not whole["notes"]

        archive = ArchiveFile.open(a1)
        old = make_inclusion_proof(ledger.store, 1234, archives=[archive])
        assert old["tree_size"] == 5000 and proof_ok(ledger, old)
        latest = ledger.checkpoint_now()
        against_latest = make_inclusion_proof(ledger.store, 1234, latest, archives=[archive])
        assert against_latest["tree_size"] == 10_001 and proof_ok(ledger, against_latest)
        assert proof_ok(ledger, make_inclusion_proof(ledger.store, 7777))
        assert proof_ok(ledger, make_inclusion_proof(ledger.store, 5001))
        with pytest.raises(NotFound, match="entry 1234 was archived"):
            make_inclusion_proof(ledger.store, 1234)
        assert proof_ok(ledger, make_consistency_proof(ledger.store, 5000))
        with pytest.raises(NotFound, match="pass its archive"):
            make_consistency_proof(ledger.store, 4000)
        assert proof_ok(ledger, make_consistency_proof(ledger.store, 4000, archives=[archive]))

        fill(ledger, 700, 10_000)
        ledger.checkpoint_now()
        assert verify(ledger)["ok"] and verify(ledger, a1)["ok"]
        assert verify(ledger, a1)["entries"] == 10_701

        second = archive_ledger(ledger, a2)  # up to the newest checkpoint
        assert second.first_seq == 5001 and second.last_seq == 10_701
        assert table_size(ledger.store).rows == 1  # the second archive's own record
        both = verify(ledger, a2, a1)  # any order
        assert both["ok"], both["problems"]
        assert both["entries"] == 10_702 and both["archived_checked"] == 10_701
        only_second = verify(ledger, a2)
        assert only_second["ok"] and "entries 1..5000 were not checked" in only_second["notes"][0]
        assert verify(ledger)["ok"]
        assert len(archive_rows(ledger.store)) == 2

        in_second = ArchiveFile.open(a2)
        assert proof_ok(ledger, make_inclusion_proof(ledger.store, 9000, archives=[in_second]))
        latest = ledger.checkpoint_now()
        with pytest.raises(NotFound, match="needs entry 50"):
            make_inclusion_proof(ledger.store, 12, latest, archives=[archive])
        both_files = [archive, in_second]
        assert proof_ok(ledger, make_inclusion_proof(ledger.store, 12, latest, archives=both_files))

        fill(ledger, 10, 20_000)
        assert verify(ledger, a1, a2)["ok"]


def test_archiving_while_the_ledger_keeps_appending(tmp_path: Path, database: str | None) -> None:
    with open_ledger(tmp_path / "home", database, every=100) as ledger:
        fill(ledger, 1000)
        ledger.checkpoint_now()
        stop = threading.Event()
        appended: list[int] = []

        def writer() -> None:
            while not stop.is_set():
                appended.append(ledger.record_admin("w", "alias.move", {}).result(30))

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            result = archive_ledger(ledger, tmp_path / "a.jsonl", before_checkpoint=1000, batch=50)
        finally:
            stop.set()
            thread.join(30)
        assert result.deleted == 1000 and appended
        ledger.checkpoint_now()
        report = verify(ledger, tmp_path / "a.jsonl")
        assert report["ok"], report["problems"]
        assert report["entries"] == 1000 + len(appended) + 1


# ---- tampering -------------------------------------------------------------------------------


@pytest.fixture
def archived(tmp_path: Path, database: str | None) -> Iterator[tuple[AuditLedger, Path]]:
    """A 400-entry ledger (a checkpoint every 50) with entries 1..200 archived."""
    with open_ledger(tmp_path / "home", database, every=50) as ledger:
        fill(ledger, 200)
        ledger.checkpoint_now()
        fill(ledger, 200, 200)
        path = tmp_path / "a.jsonl"
        archive_ledger(ledger, path, before_checkpoint=200)
        yield ledger, path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def edit_payload(lines: list[bytes], seq: int) -> None:
    row = json.loads(lines[seq])  # line 0 is the header, line seq is entry seq
    row["payload"] = row["payload"].replace(f'"n":{seq - 1}', f'"n":{seq + 1000}')
    lines[seq] = canonical_json(row) + b"\n"


def remove_line(lines: list[bytes], seq: int) -> None:
    del lines[seq]


def swap_lines(lines: list[bytes], seq: int) -> None:
    lines[seq], lines[seq + 1] = lines[seq + 1], lines[seq]


def edit_checkpoint(lines: list[bytes], _seq: int) -> None:
    header = json.loads(lines[0])
    header["checkpoint"]["root_hash"] = "ab" * 32
    lines[0] = canonical_json(header) + b"\n"


@pytest.mark.parametrize(
    ("tamper", "seq", "named"),
    [
        (edit_payload, 57, "entry 57: contents do not match its entry_hash (edited)"),
        (remove_line, 80, "entry 80 missing: the entry after 79 is 81"),
        (swap_lines, 100, "entry 100 missing: the entry after 99 is 101"),
        (edit_checkpoint, 0, "its checkpoint (size 200) is not signed by this ledger's key"),
    ],
)
def test_a_tampered_archive_is_named(
    archived: tuple[AuditLedger, Path], tamper: object, seq: int, named: str
) -> None:
    ledger, path = archived
    assert verify(ledger, path)["ok"]
    lines = lines_of(path)
    tamper(lines, seq)  # type: ignore[operator]
    bad = path.with_name("bad.jsonl")
    bad.write_bytes(b"".join(lines))
    report = verify(ledger, bad)
    messages = [p["message"] for p in report["problems"]]
    assert not report["ok"]
    assert any(m == f"archive bad.jsonl: {named}" for m in messages), messages
    assert report["first_bad_seq"] == (seq or 1)
    assert any("differs from the recorded" in m for m in messages)  # not the archived file
    assert verify(ledger)["ok"]  # the live chain alone is still intact


def test_a_fully_rehashed_archive_still_fails_its_signed_checkpoint(
    archived: tuple[AuditLedger, Path],
) -> None:
    """Edit an entry and recompute every hash, the header's sums and its end state: the
    signed checkpoint's root and the recorded sha256 still give it away."""
    ledger, path = archived
    lines = lines_of(path)
    edit_payload(lines, 30)
    header = json.loads(lines[0])
    prev, frontier = header["start"]["entry_hash"], Frontier()
    body = []
    for line in lines[1:]:
        row = json.loads(line)
        row["prev_hash"] = prev
        row["entry_hash"] = prev = chain_hash(prev, row["payload"].encode())
        leaf = leaf_hash(row["payload"].encode())
        row["leaf_hash"] = leaf.hex()
        frontier.append(leaf)
        body.append(canonical_json(row) + b"\n")
    header["entries_sha256"] = hashlib.sha256(b"".join(body)).hexdigest()
    header["end"] = {"seq": 200, "entry_hash": prev, "frontier": frontier.to_hex()}
    bad = path.with_name("rehashed.jsonl")
    bad.write_bytes(canonical_json(header) + b"\n" + b"".join(body))
    report = verify(ledger, bad)
    messages = " | ".join(p["message"] for p in report["problems"])
    assert not report["ok"] and "do not match its signed checkpoint" in messages
    assert "does not match the log" in messages  # stored checkpoints inside 1..200 too
    assert "the store's archive boundary at entry 200 does not match" in messages


def test_tampering_with_the_store_boundary_is_caught(archived: tuple[AuditLedger, Path]) -> None:
    ledger, _ = archived
    with ledger.store.engine.begin() as conn:
        conn.execute(sa.update(t.archives).values(entry_hash="cd" * 32))
    report = verify(ledger)
    assert not report["ok"] and report["first_bad_seq"] == 201
    assert "prev_hash is not the hash of the entry before it" in str(report["problems"])


def test_deleting_live_entries_next_to_the_boundary_is_caught(
    archived: tuple[AuditLedger, Path],
) -> None:
    ledger, _ = archived
    with ledger.store.engine.begin() as conn:
        conn.execute(sa.delete(t.entries).where(t.entries.c.seq <= 205))
    report = verify(ledger)
    assert not report["ok"] and report["first_bad_seq"] == 201
    assert "entries 201..205 missing" in report["problems"][0]["message"]


# ---- archiving runs: refusals, a run that did not finish --------------------------------------


def test_refusals_delete_nothing(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "home", every=50) as ledger:
        fill(ledger, 120)
        ledger.checkpoint_now()
        out = tmp_path / "a.jsonl"
        with pytest.raises(InvalidRequest, match="no signed checkpoint of size 77"):
            archive_ledger(ledger, out, before_checkpoint=77)
        with pytest.raises(InvalidRequest, match="fewer than --keep 100"):
            archive_ledger(ledger, out, before_checkpoint=120, keep=100)
        # keep=120 leaves no room at all (keep=119 would not do: on a fresh ledger the first
        # commit is also checkpointed, and it may hold a single entry).
        with pytest.raises(InvalidRequest, match="nothing to archive"):
            archive_ledger(ledger, out, keep=120)
        out.write_text("mine\n")
        with pytest.raises(InvalidRequest, match="exists"):
            archive_ledger(ledger, out)
        assert out.read_text() == "mine\n"
        # A tampered store does not get archived: the written file fails its check first.
        with ledger.store.engine.begin() as conn:
            conn.execute(
                sa.update(t.entries)
                .where(t.entries.c.seq == 40)
                .values(payload=t.entries.c.payload + " ")
            )
        bad = tmp_path / "b.jsonl"
        with pytest.raises(InvalidRequest, match="does not check, so nothing was deleted"):
            archive_ledger(ledger, bad)
        assert table_size(ledger.store).rows == 120 and not archive_rows(ledger.store)


def test_an_unfinished_delete_is_skipped_then_finished(tmp_path: Path) -> None:
    """Rows at or below the boundary (as a run killed while deleting leaves them) are
    skipped by verify, and the next archive run deletes them first."""
    with open_ledger(tmp_path / "home", every=50) as ledger:
        fill(ledger, 150)
        ledger.checkpoint_now()
        a1 = tmp_path / "a1.jsonl"
        archive_ledger(ledger, a1, before_checkpoint=150)
        archive = ArchiveFile.open(a1)
        rows = [vars(r) for r in archive.entries() if int(r.seq) > 100]
        with ledger.store.engine.begin() as conn:
            conn.execute(sa.insert(t.entries), rows)
        report = verify(ledger)
        assert report["ok"] and "50 archived entries (up to 150)" in report["notes"][0]
        assert verify(ledger, a1)["ok"]
        fill(ledger, 60, 150)
        ledger.checkpoint_now()
        result = archive_ledger(ledger, tmp_path / "a2.jsonl")
        assert result.leftovers_deleted == 50 and result.first_seq == 151
        assert verify(ledger, a1, tmp_path / "a2.jsonl")["ok"]


def test_sealed_bodies_travel_in_the_archive(tmp_path: Path) -> None:
    from llmeco.governance.crypto import Cipher, generate_key

    settings = Settings(
        home=tmp_path / "home",
        audit_store_bodies=True,
        encryption_keys=generate_key(),  # type: ignore[arg-type]
        audit_checkpoint_entries=10,
    )
    with AuditLedger.open(settings) as ledger:
        for i in range(12):
            record = RequestRecord(
                request_id=f"req-{i}",
                method="POST",
                path="/v1/chat/completions",
                route="/v1/chat/completions",
                status=200,
                latency_ms=1.0,
                request_sha256="0" * 64,
                response_sha256="1" * 64,
                request_bytes=10,
                response_bytes=6,
                started="2026-01-01T00:00:00.000000Z",
                request_body=f"question {i}".encode(),
                response_body=b"answer",
            )
            ledger.record_request(record).result(10)
        ledger.checkpoint_now()
        archive_ledger(ledger, tmp_path / "a.jsonl")
        archive = ArchiveFile.open(tmp_path / "a.jsonl")
        entry = read_entry(ledger.store, 3, Cipher.from_settings(settings), [archive])
        assert entry["request_body"] == "question 2" and entry["response_body"] == "answer"
        with pytest.raises(NotFound, match="archived: pass the archive"):
            read_entry(ledger.store, 3)


# ---- which proofs the frontier alone allows ------------------------------------------------------


def test_partial_tree_matches_the_full_tree() -> None:
    rng = random.Random(7)
    for n in range(1, 41):
        leaves = [leaf_hash(rng.randbytes(8)) for _ in range(n)]
        for boundary in range(n + 1):
            tree = PartialTree()
            frontier = Frontier()
            for leaf in leaves[:boundary]:
                frontier.append(leaf)
            tree.add_frontier(frontier)
            tree.add_leaves(boundary, leaves[boundary:])
            for i in range(boundary, n):
                assert tree.inclusion_path(i, n) == inclusion_proof(leaves, i)
            for old in range(boundary, n + 1):
                assert tree.consistency_path(old, n) == consistency_proof(leaves, old)
            if boundary >= 2:  # an archived leaf needs its neighbour, which is gone
                with pytest.raises(MissingLeaf):
                    tree.inclusion_path(0, n)


# ---- the CLI ---------------------------------------------------------------------------------


def cli(home: Path, *args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from llmeco.cli.main import app

    env = {"LLMECO_HOME": str(home), "LLMECO_AUDIT_CHECKPOINT_ENTRIES": "10"}
    result = CliRunner().invoke(app, ["audit", *args], env=env)
    return result.exit_code, result.output


def test_cli_archive_verify_prove_show(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with open_ledger(home, every=10) as ledger:
        fill(ledger, 20)
        ledger.checkpoint_now()
        fill(ledger, 20, 20)
        ledger.checkpoint_now()
    out = tmp_path / "a.jsonl"
    code, text = cli(home, "archive", str(out), "--before-checkpoint", "nope")
    assert code == 2 and "checkpoint size or 'latest'" in text
    code, text = cli(home, "archive", str(out), "--keep", "15", "--json")
    assert code == 0, text
    done = json.loads(text)
    assert done["first_seq"] == 1 and done["last_seq"] == 20
    assert done["store_before"]["rows"] == 40
    assert done["store_after"]["rows"] == 40 - done["last_seq"] + 1  # + the archive's record
    last = done["last_seq"]

    code, text = cli(home, "verify")
    assert code == 0 and "intact" in text and f"archived: entries 1..{last}" in text, text
    code, text = cli(home, "verify", "--archive", str(out))
    assert code == 0 and "41 entries" in text and f"({last} checked from archives)" in text

    code, text = cli(home, "prove", "5")
    assert code == 2 and "entry 5 was archived" in text
    proof = tmp_path / "p.json"
    code, text = cli(home, "prove", "5", "--archive", str(out), "--out", str(proof))
    assert code == 0 and json.loads(text)["tree_size"] == last
    code, text = cli(home, "verify", "--proof", str(proof), "--no-chain")
    assert code == 0 and "proof: ok" in text, text
    code, text = cli(home, "consistency", str(last))
    assert code == 0 and json.loads(text)["old_size"] == last
    code, text = cli(home, "show", "5", "-a", str(out))
    assert code == 0 and json.loads(text)["payload"]["details"] == {"n": 4}
    code, text = cli(home, "show", "5")
    assert code == 2 and "pass the archive" in text

    lines = lines_of(out)
    edit_payload(lines, 7)
    out.write_bytes(b"".join(lines))
    code, text = cli(home, "verify", "--archive", str(out))
    assert code == 1 and "TAMPERED" in text and "first bad entry: 7" in text, text

    code, text = cli(home, "archive", str(tmp_path / "b.jsonl"))
    assert code == 0 and "archived entries" in text and "store after" in text, text
    assert "rows" in text and "database file" in text
