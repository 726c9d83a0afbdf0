"""``llmeco top`` in a real terminal (tmux) against a live server with keys and traffic:
the screen shows the model's queue, rates and latency percentiles, and the key that used
the most tokens, and it refreshes as traffic arrives."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fake_engine import FakeEngine
from server_helpers import LiveServer

from llmeco.governance.scopes import Grant
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.settings import Settings

pytestmark = pytest.mark.slow

#: The webapp key's row of the keys table: its token count.
KEY_ROW = r"webapp\s*│\s*(\d+)"
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def screen(tmux: str, session: str) -> str:
    out = subprocess.run(
        [tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True, timeout=10
    )
    return out.stdout


def wait_for(tmux: str, session: str, pattern: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(tmux, session)
        if re.search(pattern, text, re.S):
            return text
        time.sleep(0.3)
    raise AssertionError(f"{pattern!r} never appeared; the screen was:\n{text}")


async def test_top_shows_live_traffic_in_a_terminal(tmp_path: Path) -> None:
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed; install it with: apt-get install -y tmux")
    settings = Settings(home=tmp_path)
    auth = Authenticator.open(settings)
    # an admin sees the usage of the keys it dominates (here: chat keys)
    _, admin = auth.keys.create("ops", Grant(scopes=frozenset({"admin", "chat"})))
    _, user = auth.keys.create("webapp", Grant(scopes=frozenset({"chat"})))
    fake = FakeEngine(reply="one two three four five six", delay=0.01)
    app = build_app(settings, {fake.name: fake}, auth=auth)
    stop = threading.Event()

    def traffic(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
            while not stop.is_set():
                c.post(
                    "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {user}"}
                )
                time.sleep(0.05)

    session = f"llmeco-top-{os.getpid()}"
    try:
        with LiveServer(app) as live:
            worker = threading.Thread(target=traffic, args=(live.url,), daemon=True)
            worker.start()
            command = f"{sys.executable} -m llmeco top --url {live.url} --interval 0.5"
            subprocess.run(
                [tmux, "new-session", "-d", "-s", session, "-x", "180", "-y", "40",
                 "-e", f"LLMECO_API_KEY={admin}", "-e", "COLUMNS=180", command],
                check=True, timeout=10,
            )  # fmt: skip
            wait_for(tmux, session, KEY_ROW)  # the first frame: totals since start
            text = wait_for(tmux, session, r"req/s (?!0\.00)")  # then rates over 0.5 s
            assert "llmeco top" in text and "ready" in text
            # the model's row: running/waiting, KV use, token rates and latency percentiles
            row = next(line for line in text.splitlines() if "fake-model" in line)
            assert re.search(r"\d+ ms", row), row
            rate = re.search(r"req/s (\d+\.\d+)", text)
            assert rate and float(rate.group(1)) > 0, text
            tokens = int(re.search(KEY_ROW, text).group(1))  # type: ignore[union-attr]
            # it refreshes: the key's token count grows while traffic goes on
            later = wait_for(tmux, session, KEY_ROW)
            deadline = time.monotonic() + 20
            while int(re.search(KEY_ROW, later).group(1)) <= tokens:  # type: ignore[union-attr]
                assert time.monotonic() < deadline, later
                time.sleep(0.3)
                later = screen(tmux, session)
            stop.set()
            worker.join(10)
    finally:
        stop.set()
        subprocess.run([tmux, "kill-session", "-t", session], capture_output=True, timeout=10)
        await auth.aclose()
