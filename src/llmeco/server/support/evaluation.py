"""Running the support assistant's answer-level evaluation in process: the model served by
an in-process server, the assistant reached through ``/v1/chat/completions`` exactly as a
client reaches it (``llmeco kb eval --answers``)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from llmeco.apps.conversations import ConversationLog
from llmeco.apps.support.desk import SupportDesk
from llmeco.apps.support.evaluate import AnswerScore, Item, run, support_asker
from llmeco.engine.async_engine import AsyncEngine
from llmeco.governance.crypto import Cipher
from llmeco.rag.embed import Embedder
from llmeco.server import build_app
from llmeco.settings import Settings
from llmeco.store import Store


async def evaluate_answers(
    settings: Settings,
    kb: str,
    items: Sequence[Item],
    embedder: Embedder,
    *,
    model: str = "default",
    max_tokens: int = 60,
    concurrency: int = 8,
) -> AnswerScore:
    """Serve ``model`` in process with the support desk over ``settings``' store and score
    ``support:<kb>`` on ``items`` (:func:`llmeco.apps.support.evaluate.run`).

    Raises:
        NotFound: no knowledge base ``kb`` (or no model ``model``).
    """
    store = Store.from_settings(settings)
    desk = SupportDesk(store, embedder, ConversationLog(store, Cipher.from_settings(settings)))
    desk.knowledge_base(kb)  # fail before loading the model when the name is wrong
    engine = AsyncEngine.from_ref(model, settings)
    try:
        app = build_app(settings, {engine.model_info.name: engine}, embedder, support=desk)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://llmeco", timeout=900
        ) as client:
            ask = support_asker(client, kb, max_tokens=max_tokens)
            return await run(ask, items, concurrency=concurrency)
    finally:
        await engine.shutdown(timeout=1)
