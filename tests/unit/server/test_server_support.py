"""The support assistant through the chat route: citations, hand-offs, sessions, feedback.

Real knowledge base (SQLite store, the packaged embedder), scripted engine: what is under test
is the contract — which passages are cited, when the model is not asked at all, what is stored
and how (redacted, encrypted), and how feedback becomes training data.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from fake_engine import FakeEngine
from server_helpers import assert_openai_error, sse_events

from llmeco.apps import support
from llmeco.apps.answerability import default_gate, open_gate
from llmeco.apps.conversations import ConversationLog, messages_table
from llmeco.apps.support import Grounder, ground, plan_turn
from llmeco.apps.support.calibration import GateStore
from llmeco.apps.support.desk import SupportDesk
from llmeco.governance.crypto import Cipher
from llmeco.rag.embed import Embedder
from llmeco.rag.kb import KnowledgeBase
from llmeco.server import build_app
from llmeco.settings import Settings
from llmeco.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.from_settings(Settings(home=tmp_path))


@pytest.fixture
def desk(store: Store, embedder: Embedder, acme_handbook: str) -> SupportDesk:
    kb = KnowledgeBase.create(store, "acme", embedder)
    kb.add_text("handbook.md", acme_handbook)
    log = ConversationLog(store, Cipher([b"k" * 32]))
    return SupportDesk(store, embedder, log, company="Acme")


@pytest.fixture
async def sclient(
    settings: Settings, fake: FakeEngine, desk: SupportDesk
) -> AsyncIterator[httpx.AsyncClient]:
    fake.max_model_len = 8192
    app = build_app(settings, {fake.name: fake}, support=desk)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def ask(text: str, **extra: object) -> dict[str, object]:
    return {"model": "support:acme", "messages": [{"role": "user", "content": text}], **extra}


async def test_answer_cites_the_passage_it_comes_from(
    sclient: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = "Refunds are paid to your card within five business days."
    r = await sclient.post("/v1/chat/completions", json=ask("How long do refunds take?"))
    assert r.status_code == 200, r.text
    body = r.json()
    content = body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    # attributed: no marker given, so the supporting passage's goes before the full stop
    assert content.startswith(fake.reply[:-1] + " [") and content.endswith("].")
    cited = int(content.rsplit("[", 1)[1][:-2])
    assert cited == 1  # the passage closest to the question comes first
    passage = next(c for c in body["citations"] if c["index"] == cited)
    assert "five business days" in passage["text"] and passage["doc"] == "handbook.md"
    assert "Refunds" in passage["section"]
    assert "five business days" in fake.prompts[0]  # the model saw the passages
    assert r.headers["x-session-id"] == body["session_id"]


async def test_model_markers_are_kept_and_not_doubled(
    sclient: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = "We open at nine in the morning [1]."
    r = await sclient.post("/v1/chat/completions", json=ask("When does the Calder shop open?"))
    content = r.json()["choices"][0]["message"]["content"]
    assert content.startswith(fake.reply + " ")
    # the reply leaves out the closing time and the days, so the passage sentence that holds
    # them is quoted after it (citing the same passage once per sentence)
    assert content == fake.reply + " " + (
        "Our shop in Calder is open from nine in the morning to six in the evening, Monday to "
        "Saturday [1]."
    )


async def test_wrong_marker_is_replaced_by_the_supporting_passage(
    sclient: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = "Batteries are covered for two years or eight hundred charge cycles [3]."
    body = (
        await sclient.post("/v1/chat/completions", json=ask("How long are batteries covered?"))
    ).json()
    content = body["choices"][0]["message"]["content"]
    marks = [int(m) for m in re.findall(r"\[(\d+)\]", content)]
    assert len(marks) == 1 and content.startswith("Batteries are covered for two years")
    passage = next(c for c in body["citations"] if c["index"] == marks[0])
    assert "eight hundred charge cycles" in passage["text"]


async def test_unsupported_sentences_are_dropped(
    sclient: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = (
        "Yes. Refunds are paid to the original card within five business days. "
        "Our refunds also come with a free bicycle helmet and a voucher for the cinema."
    )
    body = (
        await sclient.post("/v1/chat/completions", json=ask("How long do refunds take?"))
    ).json()
    content = body["choices"][0]["message"]["content"]
    assert content == "Yes. Refunds are paid to the original card within five business days [1]."


async def test_unsupported_answer_becomes_a_cited_quote(
    sclient: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = "I am a helpful assistant and I love talking about the weather on Mars."
    question = ask("How long do refunds take?")
    body = (await sclient.post("/v1/chat/completions", json=question)).json()
    content = body["choices"][0]["message"]["content"]
    assert content.endswith(" [1].")
    passage = next(c for c in body["citations"] if c["index"] == 1)
    assert content[: -len(" [1].")] in " ".join(passage["text"].split())  # quoted from [1]
    assert "five business days" in content
    raw = await sclient.post("/v1/chat/completions", json={**question, "stream": True})
    events = sse_events(raw.text)
    streamed = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert streamed == content


async def test_unanswerable_question_hands_off_without_asking_the_model(
    sclient: httpx.AsyncClient, fake: FakeEngine
) -> None:
    r = await sclient.post("/v1/chat/completions", json=ask("Do you sell electric scooters?"))
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "handoff"
    assert body["handoff"]["reason"] and body["citations"] == []
    assert fake.requests == []
    listed = (await sclient.get("/admin/handoffs")).json()["data"]
    assert [h["id"] for h in listed] == [body["handoff"]["id"]]
    assert listed[0]["question"] == "Do you sell electric scooters?"
    assert listed[0]["response_id"] == body["id"]


async def test_streamed_answer_carries_citations_first_and_matches_plain(
    sclient: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = "The frame warranty lasts ten years."
    question = ask("How long is the frame warranty?")
    plain = (await sclient.post("/v1/chat/completions", json=question)).json()
    raw = await sclient.post("/v1/chat/completions", json={**question, "stream": True})
    events = sse_events(raw.text)
    assert events[0]["citations"] == plain["citations"] and events[0]["citations"]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == plain["choices"][0]["message"]["content"]
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


async def test_streamed_handoff(sclient: httpx.AsyncClient) -> None:
    raw = await sclient.post(
        "/v1/chat/completions", json=ask("What is the name of your CEO?", stream=True)
    )
    events = sse_events(raw.text)
    assert events[-2]["choices"][0]["finish_reason"] == "handoff"
    assert "handoff" in events[0]


async def test_session_is_kept_redacted_and_encrypted(
    sclient: httpx.AsyncClient, fake: FakeEngine, desk: SupportDesk, store: Store
) -> None:
    fake.reply = "Refunds take five business days."
    headers = {"x-session-id": "s-1"}
    question = "How long do refunds take? Write to jane.doe@example.com"
    r = await sclient.post("/v1/chat/completions", json=ask(question), headers=headers)
    assert r.status_code == 200
    fake.reply = "Yes, to the original card."
    r2 = await sclient.post(
        "/v1/chat/completions", json=ask("And to which card are refunds paid?"), headers=headers
    )
    assert r2.status_code == 200
    # the second turn was sent alone; the stored first turn was put before it
    assert "Refunds take five business days [1]." in fake.prompts[1]  # as the user saw it
    history = desk.log.history("s-1")
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert "jane.doe@example.com" not in history[0]["content"] and "EMAIL" in history[0]["content"]
    with store.session() as s:
        blobs = s.execute(sa.select(messages_table.c.content)).scalars().all()
    assert blobs and all(b"refund" not in blob.lower() for blob in blobs)


async def test_feedback_round_trip_to_training_data(
    sclient: httpx.AsyncClient, fake: FakeEngine, desk: SupportDesk
) -> None:
    fake.reply = "Refunds take a month."
    r = await sclient.post("/v1/chat/completions", json=ask("How long do refunds take?"))
    rid = r.json()["id"]
    answered = r.json()["choices"][0]["message"]["content"]
    assert "month" not in answered  # the passage says nothing of a month
    fix = "Refunds are paid within five business days [1]."
    fb = await sclient.post(
        "/v1/feedback", json={"response_id": rid, "rating": "down", "correction": fix}
    )
    assert fb.status_code == 200, fb.text
    sft = list(desk.log.export("sft"))
    assert sft == [
        {
            "messages": [
                {"role": "user", "content": "How long do refunds take?"},
                {"role": "assistant", "content": fix},
            ]
        }
    ]
    pref = list(desk.log.export("preference"))
    assert pref[0]["chosen"] == fix and pref[0]["rejected"] == answered


async def test_bad_support_requests(sclient: httpx.AsyncClient) -> None:
    assert_openai_error(
        await sclient.post("/v1/chat/completions", json={**ask("hi"), "model": "support:nope"}), 404
    )
    assert_openai_error(await sclient.post("/v1/chat/completions", json=ask("hi", n=2)), 400)
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    r = await sclient.post("/v1/chat/completions", json=ask("hi", tools=[tool]))
    assert_openai_error(r, 400)
    assert r.json()["error"]["param"] == "tools"  # never silently ignored
    assert_openai_error(
        await sclient.post("/v1/feedback", json={"response_id": "nope", "rating": "up"}), 404
    )
    assert_openai_error(
        await sclient.post("/v1/feedback", json={"response_id": "x", "rating": "meh"}), 400
    )


async def test_support_is_a_404_when_not_enabled(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=ask("hi"))
    assert_openai_error(r, 404)


def test_grounding_does_not_depend_on_how_the_answer_is_cut(
    desk: SupportDesk, embedder: Embedder
) -> None:
    turn = plan_turn(
        [{"role": "user", "content": "How long do refunds take?"}],
        desk.knowledge_base("acme"),
        embedder,
    )
    assert not turn.handoff and turn.citations[0].section.endswith("Refunds")
    answer = (
        "Sure. [2] Refunds are paid within five business days. [2]\n\n"
        "Shipping costs are not refunded unless the item arrived damaged [9]. Thanks!"
    )
    whole = ground(answer, turn, embedder)
    grounder = Grounder(turn, embedder)
    pieces = "".join(grounder.feed(ch) for ch in answer) + grounder.finish()
    assert pieces == whole
    assert whole == (
        "Sure. Refunds are paid within five business days [1].\n\n"
        "Shipping costs are not refunded unless the item arrived damaged [1]. Thanks!"
    )


def test_a_question_about_something_the_kb_never_mentions_is_handed_off_with_its_reason(
    desk: SupportDesk, embedder: Embedder
) -> None:
    kb = desk.knowledge_base("acme")
    asked = [{"role": "user", "content": "Do you sell travel insurance for scooters?"}]
    turn = plan_turn(asked, kb, embedder)
    assert turn.handoff and turn.citations == [] and turn.evidence is None
    assert turn.answerability < default_gate().threshold
    assert turn.handoff_reason is not None and "answerability" in turn.handoff_reason
    # the words the passages do not hold are the ones that pull it down
    words = support.content_words(asked[0]["content"])
    sims = dict(zip(words, turn.signals.word_similarities, strict=True))
    assert sims["insurance"] < 1.0 and sims["scooters"] < 1.0
    answered = plan_turn([{"role": "user", "content": "How long do refunds take?"}], kb, embedder)
    assert not answered.handoff and answered.answerability >= default_gate().threshold


async def test_a_calibrated_gate_decides_from_the_next_turn(
    sclient: httpx.AsyncClient, desk: SupportDesk, store: Store
) -> None:
    question = ask("How long do refunds take?")
    first = (await sclient.post("/v1/chat/completions", json=question)).json()
    assert first["choices"][0]["finish_reason"] != "handoff"
    strict = dataclasses.replace(open_gate(), threshold=0.99)  # probability is always 0.5
    GateStore(store).put("acme", strict)
    assert desk.gate("acme") == strict and desk.gate("other") == default_gate()
    second = (await sclient.post("/v1/chat/completions", json=question)).json()
    assert second["choices"][0]["finish_reason"] == "handoff"
    assert GateStore(store).delete("acme") and not GateStore(store).delete("acme")
    third = (await sclient.post("/v1/chat/completions", json=question)).json()
    assert third["choices"][0]["finish_reason"] != "handoff"


def test_token_recall_reads_the_question_word_by_word_in_context(embedder: Embedder) -> None:
    (pieces, vectors), *_ = embedder.token_vectors(["Refunds take ten working days."])
    assert pieces[:3] == ["ref", "##unds", "take"] and vectors.shape == (
        len(pieces),
        embedder.dimensions,
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    question = "How long do refunds take?"
    refunds = "Refunds are paid within ten working days of receiving the return."
    shipping = "Parcels are shipped with a tracked courier from our workshop."
    recall = support.token_recall(question, [shipping, refunds], embedder)
    assert recall == support.token_recall(question, [refunds], embedder)  # the best passage
    assert recall > support.token_recall(question, [shipping], embedder) + 0.1
    assert support.token_recall(question, [], embedder) == 0.0


def test_the_embedder_can_be_shared_by_threads(embedder: Embedder) -> None:
    # the fast tokenizer keeps truncation state; unguarded, mixed calls from several threads
    # fail with "Already borrowed" or a ragged batch (what concurrent support turns did)
    texts = ["How long do refunds take?", "Parcels ship in two days. " * 30]
    calls = [
        lambda: embedder.token_vectors(texts),
        lambda: embedder.count_tokens(texts),
        lambda: embedder.embed(texts),
        lambda: embedder.embed_query(texts[:1]),
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [f.result() for f in [pool.submit(calls[i % 4]) for i in range(64)]]
    assert all(r[0][0][:2] == ["how", "long"] for r in results[0::4])
    assert len({tuple(r) for r in results[1::4]}) == 1


def test_desk_reopens_a_knowledge_base_deleted_and_created_again(
    desk: SupportDesk, store: Store, embedder: Embedder
) -> None:
    first = desk.knowledge_base("acme")
    assert desk.knowledge_base("acme") is first  # cached while it exists
    first.drop()  # as DELETE /v1/kb/acme or `llmeco kb delete acme` (any process) does
    again = KnowledgeBase.create(store, "acme", embedder)
    again.add_text("new.md", "# Hours\n\nWe open at nine.")
    reopened = desk.knowledge_base("acme")
    assert reopened is not first and reopened.id == again.id
    assert [h.doc for h in reopened.search("When do you open?", k=1)] == ["new.md"]
