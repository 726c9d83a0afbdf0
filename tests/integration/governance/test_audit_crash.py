"""Crash test: ``kill -9`` a real ``llmeco serve`` under 20 concurrent clients; afterwards the
ledger verifies and every request that got a complete 200 has its entry.

A complete 200 means: a non-streamed 200 with its body, or a stream that reached
``data: [DONE]``. Requests are matched by the ``x-request-id`` each client sends. The server
is then restarted on the same store to show the chain carries on after the crash.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from llmeco.cli.serve import serve
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.checkpoint import Signer
from llmeco.governance.audit.verify import verify_ledger
from llmeco.settings import Settings
from llmeco.store import Store

pytestmark = pytest.mark.slow

LLMECO = str(Path(sys.executable).parent / "llmeco")
CLIENTS = 20


def start_server(home: Path, model: Path) -> tuple[subprocess.Popen[str], str]:
    args = [LLMECO, "serve", "--model", str(model), "--port", "0", "--no-embeddings"]
    params = inspect.signature(serve).parameters
    if "auth" in params or "no_auth" in params:  # auth is on by default once it exists
        args.append("--no-auth")
    env = {
        **os.environ,
        "LLMECO_HOME": str(home),
        "LLMECO_THREADS": "1",
        "LLMECO_AUDIT_CHECKPOINT_ENTRIES": "25",
    }
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"at (http://\S+)/", line)
        if match:
            return proc, match.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"llmeco serve did not start (exit {proc.poll()})")


def client(url: str, model: str, worker: int, acked: list[str], stop: threading.Event) -> None:
    i = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            rid = f"w{worker}-r{i}"
            i += 1
            stream = i % 2 == 0
            body = {
                "model": model,
                "messages": [{"role": "user", "content": f"hello {rid}"}],
                "max_tokens": 6,
                "stream": stream,
            }
            try:
                if stream:
                    with http.stream(
                        "POST", "/v1/chat/completions", json=body, headers={"x-request-id": rid}
                    ) as r:
                        done = r.status_code == 200 and any(
                            line == "data: [DONE]" for line in r.iter_lines()
                        )
                else:
                    r = http.post("/v1/chat/completions", json=body, headers={"x-request-id": rid})
                    done = r.status_code == 200 and "choices" in r.json()
            except (httpx.HTTPError, json.JSONDecodeError):
                continue  # the server died mid-request: not acknowledged
            if done:
                acked.append(rid)


def test_kill_9_loses_no_acknowledged_entry(tmp_path: Path, tiny_llama_dir: Path) -> None:
    model = tiny_llama_dir
    home = tmp_path / "home"
    proc, url = start_server(home, model)
    name = httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]
    acked: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=client, args=(url, name, w, acked, stop), daemon=True)
        for w in range(CLIENTS)
    ]
    try:
        for th in threads:
            th.start()
        deadline = time.monotonic() + 30
        while len(acked) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # mid-traffic, no chance to flush anything
        proc.wait(10)
    finally:
        stop.set()
        proc.kill()
        for th in threads:
            th.join(30)
    assert len(acked) >= 60, f"only {len(acked)} requests completed before the kill"

    settings = Settings(home=home)
    store = Store.from_settings(settings)
    key = Signer.from_settings(settings).public_key
    report = verify_ledger(store, key)
    assert report.ok, report.to_dict()
    with store.session() as s:
        recorded = set(s.scalars(sa.select(t.entries.c.request_id)).all())
    missing = sorted(set(acked) - recorded)
    print(f"acknowledged={len(acked)} entries={report.entries} checkpoints={report.checkpoints}")
    assert not missing, f"{len(missing)} acknowledged requests have no entry: {missing[:10]}"
    entries_before = report.entries

    # Restart on the same store: the chain continues from the crash point and still verifies.
    proc, url = start_server(home, model)
    try:
        r = httpx.get(url + "/v1/models", headers={"x-request-id": "after-restart"}, timeout=30)
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        proc.kill()
    report = verify_ledger(store, key)
    assert report.ok, report.to_dict()
    assert report.entries == entries_before + 1
    cli = subprocess.run(
        [LLMECO, "audit", "verify"],
        env={**os.environ, "LLMECO_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "intact" in cli.stdout
    store.close()
