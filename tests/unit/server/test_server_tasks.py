"""Task endpoints and the writing assistant over a scripted engine: contracts and bad input."""

from __future__ import annotations

import json

import httpx
import pytest
from fake_engine import FakeEngine
from server_helpers import assert_openai_error, sse_events

from llmeco.apps.tasks import MODERATION_CATEGORIES


@pytest.fixture(autouse=True)
def roomy(fake: FakeEngine) -> None:
    """Task prompts carry instructions; give the character-level fake a realistic context."""
    fake.max_model_len = 4096


async def test_translate_returns_the_translation_and_exact_usage(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = "Bonjour le monde"
    r = await client.post(
        "/v1/tasks/translate", json={"text": "Hello world", "target_language": "French"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["translation"] == "Bonjour le monde"
    assert body["object"] == "task.translate" and body["model"] == fake.name
    assert body["usage"]["completion_tokens"] == len("Bonjour le monde")
    assert body["usage"]["prompt_tokens"] == len(fake.prompts[0])
    assert "into French" in fake.prompts[0] and fake.params[0].temperature == 0.0


async def test_summarize_and_correct(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    fake.reply = "A short summary."
    r = await client.post("/v1/tasks/summarize", json={"text": "long " * 50, "max_words": 20})
    assert r.json()["summary"] == "A short summary."
    assert "at most 20 words" in fake.prompts[0]
    fake.reply = "This is right."
    r = await client.post("/v1/tasks/correct", json={"text": "This is rigth."})
    assert r.json() == {**r.json(), "corrected": "This is right.", "changed": True}


async def test_classify_constrains_the_answer_to_the_labels(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = '{"label": "billing"}'
    labels = ["billing", "shipping", "returns"]
    r = await client.post(
        "/v1/tasks/classify", json={"text": "I was charged twice", "labels": labels}
    )
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "billing"
    structured = fake.params[0].structured
    assert structured is not None and structured.kind == "json_schema"
    assert structured.schema is not None
    assert structured.schema["properties"]["label"]["enum"] == labels


async def test_sentiment_and_moderate(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    fake.reply = '{"label": "negative"}'
    r = await client.post("/v1/tasks/sentiment", json={"text": "This is awful."})
    assert r.json()["label"] == "negative"
    flags = dict.fromkeys(MODERATION_CATEGORIES, False) | {"violence": True}
    fake.reply = json.dumps(flags)
    r = await client.post("/v1/tasks/moderate", json={"text": "something"})
    body = r.json()
    assert body["flagged"] is True and body["categories"] == flags


async def test_extract_returns_a_record_valid_for_the_schema(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    schema = {
        "type": "object",
        "properties": {"order": {"type": "string"}, "qty": {"type": "integer"}},
        "required": ["order", "qty"],
    }
    fake.reply = '{"order": "A-17", "qty": 3}'
    r = await client.post(
        "/v1/tasks/extract", json={"text": "Order A-17, three units", "schema": schema}
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"order": "A-17", "qty": 3}
    assert fake.params[0].structured is not None
    assert fake.params[0].structured.schema == schema


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("translate", {"text": "hi"}, "target_language"),
        ("translate", {"text": "", "target_language": "French"}, "text"),
        ("summarize", {"text": "x", "max_words": 0}, "max_words"),
        ("summarize", {"text": "x", "style": "poem"}, "style"),
        ("correct", {"text": "x", "temperature": 1}, "temperature"),
        ("classify", {"text": "x", "labels": ["a"]}, "labels"),
        ("classify", {"text": "x", "labels": ["a", "a"]}, "labels"),
        ("sentiment", {}, "text"),
        ("moderate", {"text": 5}, "text"),
        ("extract", {"text": "x"}, "schema"),
        ("extract", {"text": "x", "schema": {"type": "nonsense"}}, "schema"),
        ("extract", {"text": "x", "schema": {"type": "array"}}, "schema"),
    ],
)
async def test_bad_task_input_is_a_400_naming_the_field(
    client: httpx.AsyncClient, fake: FakeEngine, route: str, body: dict[str, object], param: str
) -> None:
    r = await client.post(f"/v1/tasks/{route}", json=body)
    error = assert_openai_error(r, 400)
    assert error["param"] == param, error
    assert fake.requests == []


async def test_unknown_model_is_a_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/tasks/sentiment", json={"text": "ok", "model": "nope"})
    assert_openai_error(r, 404)


async def test_cut_off_json_is_a_400_asking_for_more_tokens(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = '{"order": "A-17", "qty"'
    schema = {"type": "object", "properties": {"order": {"type": "string"}}}
    r = await client.post(
        "/v1/tasks/extract", json={"text": "x", "schema": schema, "max_tokens": 5}
    )
    error = assert_openai_error(r, 400)
    assert error["param"] == "max_tokens"


async def test_write_plain_and_streamed_agree(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    fake.reply = "1. Intro\n2. Body\n3. End"
    body = {"text": "Remote work", "tone": "friendly", "seed": 7}
    plain = await client.post("/v1/apps/write/outline", json=body)
    assert plain.status_code == 200, plain.text
    assert plain.json()["text"] == fake.reply
    assert plain.json()["finish_reason"] == "stop"
    assert "friendly tone" in fake.prompts[0]
    streamed = await client.post("/v1/apps/write/outline", json={**body, "stream": True})
    events = sse_events(streamed.text)
    assert events[-1] == "[DONE]"
    text = "".join(e["delta"] for e in events[:-1])
    assert text == fake.reply
    assert events[-2]["usage"]["completion_tokens"] == len(fake.reply)


@pytest.mark.parametrize("action", ["continue", "rewrite", "shorten", "expand"])
async def test_every_write_action_answers(
    client: httpx.AsyncClient, fake: FakeEngine, action: str
) -> None:
    r = await client.post(f"/v1/apps/write/{action}", json={"text": "Some draft."})
    assert r.status_code == 200 and r.json()["object"] == f"write.{action}"


async def test_unknown_write_action_is_rejected(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/apps/write/poem", json={"text": "x"})
    assert_openai_error(r, 400)
