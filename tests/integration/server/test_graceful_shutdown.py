"""SIGTERM: stop accepting, let in-flight streams finish (bounded), then shut engines down.

The server runs in a subprocess (signals go to its main thread) through the same
``ServerRuntime`` that ``llmeco serve`` uses, over the fake engine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

UNIT_SERVER = Path(__file__).resolve().parents[2] / "unit" / "server"

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {unit!r})
    from fake_engine import FakeEngine
    from llmeco.server.runtime import ServerRuntime
    from llmeco.observability.logging import configure_logging
    from llmeco.server import build_app
    from llmeco.settings import Settings

    configure_logging("INFO")
    fake = FakeEngine(reply="x" * 40, delay=0.05)
    original = fake.shutdown

    async def shutdown(timeout=30.0):
        print("ENGINE-SHUTDOWN aborted=%d completed=%d" % (len(fake.aborted),
              len(fake.completed)), flush=True)
        await original(timeout)

    fake.shutdown = shutdown
    app = build_app(Settings(), {{fake.name: fake}})
    asyncio.run(ServerRuntime(app).run("127.0.0.1", 0, shutdown_timeout={timeout}))
    """
)


def start(timeout: float) -> tuple[subprocess.Popen[str], str]:
    code = SCRIPT.format(unit=str(UNIT_SERVER), timeout=timeout)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LLMECO_LOG_LEVEL": "INFO"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"at (http://\S+)/", line)
    assert match, line + (proc.stderr.read() if proc.stderr else "")
    return proc, match.group(1)


def stream_in_thread(url: str, out: dict[str, object]) -> threading.Thread:
    first = threading.Event()

    def run() -> None:
        body = {
            "model": "fake-model",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        text = ""
        try:
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=20) as r:
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        event = json.loads(line[6:])
                        if event["choices"]:
                            text += event["choices"][0]["delta"].get("content", "")
                            first.set()
                    elif line == "data: [DONE]":
                        out["done"] = True
        except httpx.HTTPError as exc:
            out["error"] = repr(exc)
        finally:
            out["text"] = text
            first.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert first.wait(10)
    return thread


def test_sigterm_lets_in_flight_stream_finish() -> None:
    proc, url = start(timeout=10)
    try:
        out: dict[str, object] = {}
        thread = stream_in_thread(url, out)
        proc.send_signal(signal.SIGTERM)
        thread.join(15)
        assert out.get("done") is True, out
        assert out["text"] == "x" * 40
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.get(url + "/health", timeout=2)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "ENGINE-SHUTDOWN aborted=0 completed=1" in stdout
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [e for e in logs if e.get("logger") == "llmeco.server.access"]
    assert access and all(e.get("request_id") for e in access)
    assert any(e["msg"] == "POST /v1/chat/completions 200" for e in access)


def test_sigterm_cuts_streams_that_outlive_the_timeout() -> None:
    proc, url = start(timeout=0.5)  # rounded up to uvicorn's 1 s minimum
    try:
        out: dict[str, object] = {}
        thread = stream_in_thread(url, out)
        proc.send_signal(signal.SIGTERM)
        thread.join(15)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert not out.get("done")
    assert len(str(out["text"])) < 40
    assert "ENGINE-SHUTDOWN aborted=1 completed=0" in stdout
