"""The Support and Write tabs of the web page in a real headless Chromium.

Support: pick the knowledge base, ask, watch the answer stream, follow its citation link to the
passage. Write: stream a rewrite. Skipped when Playwright or Debian's chromium is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_engine import FakeEngine
from server_helpers import LiveServer

from llmeco.apps.conversations import ConversationLog
from llmeco.apps.support.desk import SupportDesk
from llmeco.governance.crypto import Cipher
from llmeco.rag.embed import Embedder
from llmeco.rag.kb import KnowledgeBase
from llmeco.server import build_app
from llmeco.settings import Settings
from llmeco.store import Store

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]

HANDBOOK = """# Acme handbook

## Refunds

Refunds are paid to the original card within five business days after we receive the
returned item.

## Opening hours

Our shop is open from nine in the morning to six in the evening, Monday to Saturday.
"""


@pytest.fixture
def fake() -> FakeEngine:
    # Two sentences: the answer streams a checked sentence at a time.
    return FakeEngine(
        reply="Refunds are paid within five business days [1]. Refunds are paid to the original "
        "card [1].",
        delay=0.03,
        max_model_len=8192,
    )


@pytest.fixture
def live(tmp_path: Path, fake: FakeEngine) -> Iterator[LiveServer]:
    store = Store.from_settings(Settings(home=tmp_path))
    embedder = Embedder()
    KnowledgeBase.create(store, "acme", embedder).add_text("handbook.md", HANDBOOK)
    desk = SupportDesk(store, embedder, ConversationLog(store, Cipher([b"k" * 32])))
    app = build_app(Settings(home=tmp_path), {fake.name: fake}, support=desk)
    with LiveServer(app) as server:
        yield server
    embedder.close()


def test_support_tab_streams_and_links_citations(live: LiveServer, fake: FakeEngine) -> None:
    expect = playwright_sync.expect
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(live.url + "/")
            page.click("#tab-support")
            expect(page.locator("#model option")).to_have_text(["support:acme"])
            page.fill("#input", "How long do refunds take?")
            page.press("#input", "Enter")
            answer = page.locator(".msg.assistant").last
            page.wait_for_function(
                "() => { const m = [...document.querySelectorAll('.msg.assistant')].pop();"
                " return m && m.dataset.streaming === 'true' && m.textContent.length > 3; }"
            )
            expect(answer).to_have_attribute("data-streaming", "false", timeout=10_000)
            expect(answer).to_have_text(fake.reply)
            link = answer.locator("a.cite")
            expect(link.first).to_have_text("[1]")
            link.first.click()
            target = page.locator("li:target")
            expect(target).to_contain_text("five business days")
            expect(target).to_contain_text("handbook.md")
            # the Write tab streams too
            page.click("#tab-write")
            page.fill("#write-input", "Our shop opens at nine.")
            page.click("#write-go")
            expect(page.locator("#write-out")).to_have_attribute(
                "data-streaming", "false", timeout=10_000
            )
            expect(page.locator("#write-out")).to_have_text(fake.reply)
        finally:
            browser.close()
