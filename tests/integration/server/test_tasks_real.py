"""Task endpoints and the writing assistant on the real engine with the packaged model.

The contract holds whatever the small model thinks: labels always come from the caller's list,
extracted records always validate against the caller's schema, streamed writing equals plain.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from server_helpers import LiveServer, sse_events

from llmeco.engine.async_engine import AsyncEngine
from llmeco.server import build_app
from llmeco.settings import Settings

pytestmark = pytest.mark.slow

TICKETS = [
    "I was charged twice for my subscription this month.",
    "My parcel has not arrived after two weeks.",
    "How do I send back a jacket that does not fit?",
    "The app crashes every time I open settings.",
    "Can I change the email address on my account?",
]
LABELS = ["billing", "shipping", "returns", "technical", "account"]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "maxLength": 20},
        "quantity": {"type": "integer", "minimum": 0, "maximum": 1000},
        "urgent": {"type": "boolean"},
    },
    "required": ["order_id", "quantity", "urgent"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def server(cached_home: Path, default_model_dir: Path) -> Iterator[LiveServer]:
    engine = AsyncEngine.from_ref("default", Settings(home=cached_home))
    app = build_app(Settings(home=cached_home), {engine.model_info.name: engine})
    with LiveServer(app) as live:
        yield live
    asyncio.run(engine.shutdown(timeout=1))


def test_classify_and_sentiment_always_answer_from_the_labels(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        for text in TICKETS:
            r = c.post("/v1/tasks/classify", json={"text": text, "labels": LABELS})
            assert r.status_code == 200, r.text
            assert r.json()["label"] in LABELS
            r = c.post("/v1/tasks/sentiment", json={"text": text})
            assert r.json()["label"] in {"positive", "negative", "neutral"}


def test_extract_always_validates(server: LiveServer) -> None:
    texts = [
        "Please rush order AB-1234, I need 3 of them by Friday!",
        "Order 99812: two units, no hurry.",
        "I'd like 10 more of what I bought in order X7.",
    ]
    with httpx.Client(base_url=server.url, timeout=120) as c:
        for text in texts:
            r = c.post("/v1/tasks/extract", json={"text": text, "schema": SCHEMA})
            assert r.status_code == 200, r.text
            jsonschema.validate(r.json()["data"], SCHEMA)


def test_moderate_and_write_stream(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        r = c.post("/v1/tasks/moderate", json={"text": "Have a lovely day."})
        assert r.status_code == 200, r.text
        assert isinstance(r.json()["flagged"], bool)
        body = {"text": "Our new office opens in May.", "max_tokens": 40, "temperature": 0}
        plain = c.post("/v1/apps/write/expand", json=body).json()
        raw = c.post("/v1/apps/write/expand", json={**body, "stream": True}).text
        events = sse_events(raw)
        assert "".join(e["delta"] for e in events[:-1]) == plain["text"]
        assert plain["usage"]["completion_tokens"] <= 40
        assert json.loads(json.dumps(plain))["text"]
