"""The chat page in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Skipped when Playwright or the browser is not installed (``apt-get install chromium``,
``pip install playwright``; Playwright's own browser download is never used).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_engine import FakeEngine
from server_helpers import LiveServer

from llmeco.server import build_app
from llmeco.settings import Settings

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine(reply="Streaming works, token by token.", delay=0.03)


@pytest.fixture
def live(tmp_path: Path, fake: FakeEngine) -> Iterator[LiveServer]:
    with LiveServer(build_app(Settings(home=tmp_path), {fake.name: fake})) as server:
        yield server


def test_chat_page_streams_an_answer(live: LiveServer, fake: FakeEngine) -> None:
    expect = playwright_sync.expect
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(live.url + "/")
            expect(page.locator("#model option")).to_have_text(["fake-model"])
            page.fill("#input", "Hi there")
            page.press("#input", "Enter")
            answer = page.locator(".msg.assistant").last
            # Part of the answer is on screen while the stream is still open…
            page.wait_for_function(
                "() => { const m = [...document.querySelectorAll('.msg.assistant')].pop();"
                " return m && m.dataset.streaming === 'true' && m.textContent.length > 3; }"
            )
            partial = answer.text_content() or ""
            assert 0 < len(partial) < len(fake.reply)
            # …and all of it once the stream ends.
            expect(answer).to_have_attribute("data-streaming", "false", timeout=10_000)
            expect(answer).to_have_text(fake.reply)
            expect(page.locator("#stats")).to_contain_text(f"{len(fake.reply)} tokens")
            # The second turn sends the whole conversation.
            page.fill("#input", "And again")
            page.click("#send")
            expect(page.locator(".msg.assistant")).to_have_count(2)
            expect(page.locator(".msg.assistant").last).to_have_text(fake.reply, timeout=10_000)
            assert "Hi there" in fake.prompts[-1] and fake.reply in fake.prompts[-1]
        finally:
            browser.close()
