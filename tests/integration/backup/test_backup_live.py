"""A backup taken while a real ``llmeco serve`` is busy, restored into a fresh home.

Eight clients stream support answers (``support:acme``, a tiny random Llama served from the
registry as ``tiny@prod``) and rate each one (``POST /v1/feedback``). In the middle of it,
``llmeco backup create --include-keys`` runs. The backup is restored into a new home (and,
on PostgreSQL, a new database), and there: every request acknowledged before the backup
started has its ledger entry (matched by ``x-request-id``) and every feedback acknowledged
before it its row; ``audit verify`` passes, also against a checkpoint exported before the
backup; ``models verify`` passes; ``kb search`` gives the source's hits. A byte flipped in the
backup is then refused by ``backup verify`` and by ``restore``, naming the file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import sqlalchemy as sa

from llmeco.apps.conversations import feedback_table
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.checkpoint import Signer
from llmeco.governance.audit.verify import verify_ledger
from llmeco.rag.kb import KnowledgeBase
from llmeco.registry import Registry
from llmeco.settings import Settings
from llmeco.store import Store

if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder

pytestmark = pytest.mark.slow

LLMECO = str(Path(sys.executable).parent / "llmeco")
CLIENTS = 8
PASSPHRASE = "backup passphrase for the live test"
QUESTIONS = [
    "How long do refunds take?",
    "When is the shop open?",
    "How long is the frame warranty?",
    "Where are refunds paid to?",
]
ADMIN_PG = "postgresql://postgres@127.0.0.1:5432/test"
Done = subprocess.CompletedProcess[str]


@pytest.fixture
def target_pg_url() -> Iterator[str]:
    """A second fresh PostgreSQL database, to restore into (dropped afterwards)."""
    import psycopg

    name = f"llmeco_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def env_for(home: Path, url: str) -> dict[str, str]:
    env = {**os.environ, "LLMECO_HOME": str(home), "LLMECO_THREADS": "1", "BK_PASS": PASSPHRASE}
    env.pop("LLMECO_DATABASE_URL", None)
    if url:
        env["LLMECO_DATABASE_URL"] = url
    return env


def llmeco(*args: str, env: dict[str, str], timeout: float = 300) -> Done:
    return subprocess.run(
        [LLMECO, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    args = [LLMECO, "serve", "--model", "tiny@prod", "--port", "0", "--no-auth"]
    env = {**env, "LLMECO_AUDIT_CHECKPOINT_ENTRIES": "25", "LLMECO_MODEL_POLL_SECONDS": "0"}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"at (http://\S+)/", line)
        if match:
            return proc, match.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"llmeco serve did not start (exit {proc.poll()})")


Acks = list[tuple[str, float]]


def client(url: str, worker: int, acked: Acks, feedback: Acks, stop: threading.Event) -> None:
    """Stream support answers and rate each; note what was acknowledged, and when."""
    i = 0
    with httpx.Client(base_url=url, timeout=120) as http:
        while not stop.is_set():
            i += 1
            rid = f"w{worker}-r{i}"
            body = {
                "model": "support:acme",
                "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                "max_tokens": 6,
                "temperature": 0,
                "stream": True,
            }
            headers = {"x-request-id": rid, "x-session-id": f"s-{worker}-{i}"}
            response_id, done = None, False
            try:
                with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
                    for line in r.iter_lines() if r.status_code == 200 else ():
                        if line == "data: [DONE]":
                            done = True
                        elif line.startswith("data: ") and response_id is None:
                            response_id = json.loads(line[6:]).get("id")
                if not done or response_id is None:
                    continue
                acked.append((rid, time.monotonic()))
                rating = {"response_id": response_id, "rating": "up" if i % 2 else "down"}
                r = http.post("/v1/feedback", json=rating, headers={"x-request-id": rid + "-fb"})
                if r.status_code == 200:
                    now = time.monotonic()
                    acked.append((rid + "-fb", now))
                    feedback.append((r.json()["id"], now))
            except (httpx.HTTPError, json.JSONDecodeError):
                continue


def prepare_home(home: Path, url: str, model: Path, embedder: Embedder, handbook: str) -> None:
    """Model ``tiny`` version 1 with alias ``prod`` in the registry, KB ``acme``."""
    settings = Settings(home=home, database_url=url)
    store = Store.from_settings(settings)
    registry = Registry(store, home)
    version = registry.register(model, "tiny", actor="cli:test")
    registry.set_alias("tiny", version.version, "prod", actor="cli:test")
    KnowledgeBase.create(store, "acme", embedder).add_text("handbook.md", handbook)
    store.close()


def hits_of(store: Store, embedder: Embedder) -> list[tuple[str, int, int]]:
    kb = KnowledgeBase.open(store, "acme", embedder)
    return [(h.doc, h.start, h.end) for h in kb.search(QUESTIONS[0], 3)]


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_backup_while_serving_then_restore(
    dialect: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tiny_llama_dir: Path,
    embedder: Embedder,
    acme_handbook: str,
) -> None:
    source_url = request.getfixturevalue("postgres_url") if dialect == "postgres" else ""
    target_url = request.getfixturevalue("target_pg_url") if dialect == "postgres" else ""
    home = tmp_path / "home"
    prepare_home(home, source_url, tiny_llama_dir, embedder, acme_handbook)
    env = env_for(home, source_url)
    proc, url = start_server(env)
    acked: Acks = []
    feedback: Acks = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=client, args=(url, w, acked, feedback, stop), daemon=True)
        for w in range(CLIENTS)
    ]
    backup = tmp_path / "backup"
    anchor = tmp_path / "anchor.json"
    try:
        for th in threads:
            th.start()
        deadline = time.monotonic() + 180
        while len(feedback) < 16 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(feedback) >= 16, f"only {len(feedback)} feedbacks in 180 s"
        cp = llmeco("audit", "checkpoint", "--now", "--export", str(anchor), env=env)
        assert cp.returncode == 0, cp.stderr

        started = time.monotonic()
        made = llmeco(
            "backup", "create", str(backup), "--include-keys", "--passphrase-env", "BK_PASS",
            env=env,
        )  # fmt: skip
        took = time.monotonic() - started
        assert made.returncode == 0, made.stdout + made.stderr
        during = [rid for rid, at in acked if started <= at <= started + took]
        time.sleep(1.0)  # traffic carries on after the backup
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        for th in threads:
            th.join(60)
        proc.wait(60)
    acked_before = {rid for rid, at in acked if at < started}
    feedback_before = {fid for fid, at in feedback if at < started}
    manifest = json.loads((backup / "manifest.json").read_text())
    size = sum(f["size"] for f in manifest["files"])
    print(
        f"[{dialect}] backup {took:.2f} s (CLI process, under load), {len(manifest['files'])} "
        f"files, {size / 1e6:.2f} MB, ledger head {manifest['ledger']['head_seq']}; "
        f"{len(acked_before)} acked before, {len(during)} acked during, {len(acked)} in all\n"
        f"[{dialect}] {made.stdout.strip()}"
    )
    assert len(during) > 0 or took < 1.0, "the server answered nothing while the backup ran"

    restored = tmp_path / "restored"
    restore_args = ["backup", "restore", str(backup), "--home", str(restored)]
    restore_args += ["--passphrase-env", "BK_PASS"]
    if target_url:
        restore_args += ["--database-url", target_url]
    out = llmeco(*restore_args, env=env_for(tmp_path / "unused", ""))
    assert out.returncode == 0, out.stdout + out.stderr
    print(f"[{dialect}] {out.stdout.strip()}")
    renv = env_for(restored, target_url)

    settings = Settings(home=restored, database_url=target_url)
    store = Store.from_settings(settings)
    key = Signer.from_settings(Settings(home=home)).public_key
    assert Signer.from_settings(settings).public_key == key
    report = verify_ledger(store, key)
    assert report.ok, report.to_dict()
    assert report.entries == manifest["ledger"]["head_seq"]
    with store.session() as s:
        recorded = set(s.scalars(sa.select(t.entries.c.request_id)).all())
        rated = set(s.scalars(sa.select(feedback_table.c.uid)).all())
    missing = sorted(acked_before - recorded)
    assert not missing, f"{len(missing)} acknowledged requests lost: {missing[:10]}"
    assert feedback_before <= rated, sorted(feedback_before - rated)[:10]

    verified = llmeco("audit", "verify", "--checkpoint", str(anchor), env=renv)
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout
    models = llmeco("models", "verify", "tiny@prod", env=renv)
    assert models.returncode == 0 and "files verified" in models.stdout, models.stderr
    search = llmeco("kb", "search", "acme", QUESTIONS[0], "-k", "3", "--json", env=renv)
    assert search.returncode == 0, search.stderr
    got = [json.loads(line) for line in search.stdout.splitlines() if line.strip()]
    source_store = Store.from_settings(Settings(home=home, database_url=source_url))
    assert [(h["doc"], h["start"], h["end"]) for h in got] == hits_of(source_store, embedder)
    source_store.close()
    store.close()

    store_file = manifest["store"]["file"]
    path = backup / store_file
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    bad = llmeco("backup", "verify", str(backup), env=renv)
    assert bad.returncode == 2 and f"corrupted: {store_file}" in bad.stderr, bad.stderr
    again = tmp_path / "again"
    bad = llmeco("backup", "restore", str(backup), "--home", str(again), env=renv)
    assert bad.returncode == 2 and f"corrupted: {store_file}" in bad.stderr, bad.stderr
    assert not again.exists()
