"""Helpers of the gateway tests: real ``llmeco serve`` processes (upstreams and gateways)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

LLMECO = str(Path(sys.executable).parent / "llmeco")


def env_for(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a server or CLI call on ``home``."""
    return {
        **os.environ,
        "LLMECO_HOME": str(home),
        "LLMECO_THREADS": "1",
        "LLMECO_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **extra,
    }


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(home: Path, *args: str) -> str:
    """Run ``llmeco ARGS`` on ``home``; its stdout."""
    done = subprocess.run(
        [LLMECO, *args], env=env_for(home), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def new_key(home: Path, name: str, scopes: str, *options: str) -> str:
    """Create an API key on ``home`` (``--models``, ``--rpm`` … in ``options``); the token."""
    return cli(home, "keys", "create", "--name", name, "--scopes", scopes, *options).strip()


class Served:
    """One running ``llmeco serve`` process."""

    def __init__(self, proc: subprocess.Popen[str], url: str, port: int) -> None:
        self.proc = proc
        self.url = url
        self.port = port

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def serve(home: Path, *args: str, port: int | None = None, **env: str) -> Served:
    """Start ``llmeco serve ARGS`` on ``port`` (a free one by default); wait for its URL."""
    port = port or free_port()
    proc = subprocess.Popen(
        [LLMECO, "serve", "--port", str(port), *args],
        env=env_for(home, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"serving .* at (http://\S+)/", line)
        if match:
            url = match.group(1)
            wait_listening(url)  # the URL is announced just before uvicorn listens
            return Served(proc, url, port)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"llmeco serve {args} did not start (exit {proc.wait()})")


def wait_listening(url: str, timeout: float = 30) -> None:
    """Return once ``url/health`` answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url + "/health", timeout=5)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def served_model(url: str, token: str | None = None) -> str:
    """The first generation model an llmeco server lists."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    cards = httpx.get(url + "/v1/models", headers=headers, timeout=30).json()["data"]
    return next(c["id"] for c in cards if c.get("task", "generate") == "generate")


def write_config(path: Path, upstreams: list[dict[str, Any]]) -> Path:
    """A ``--models-config`` file."""
    path.write_text(yaml.safe_dump({"upstreams": upstreams}))
    return path


@pytest.fixture
def served() -> Iterator[list[Served]]:
    """Collects servers a test starts and stops them all at its end."""
    procs: list[Served] = []
    yield procs
    for p in procs:
        p.stop()
