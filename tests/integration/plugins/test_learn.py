"""The learn plugin (``plugins/llmeco-learn``) in a real server on a free port.

The plugin is installed in the venv and reaches the app only through the plugin registry.
The library is embedded with the packaged MiniLM; explanations come from the fake engine
(their wording is the model's business, the contract is one sentence per item, bounded).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmeco.governance.scopes import Grant
from llmeco.plugins import get_registry
from llmeco.rag.embed import Embedder
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "server"))
from fake_engine import FakeEngine
from server_helpers import LiveServer, assert_openai_error

REPLY = "This lesson rebuilds the fractions you found hard. It is short."
WEAK_HISTORY = [
    {"item_id": "fractions-1-exercise", "score": 0.2},
    {"item_id": "fractions-1-lesson", "score": 0.35},
    {"item_id": "sql-queries-1-exercise", "score": 0.95},
    {"item_id": "sql-queries-2-exercise", "score": 0.9},
    {"item_id": "python-loops-1-exercise", "score": 1.0},
]


@pytest.fixture(scope="module")
def fake() -> FakeEngine:
    return FakeEngine(reply=REPLY, max_model_len=4096)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeEngine, embedder: Embedder
) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("learn-home")
    app = build_app(Settings(home=home), {fake.name: fake}, embedder)
    with LiveServer(app) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _put(c: httpx.Client, learner: str, **body: Any) -> httpx.Response:
    return c.put(f"/v1/apps/learn/learners/{learner}", json=body)


def test_the_app_comes_from_the_plugin_entry_point() -> None:
    registry = get_registry()
    specs = {a.name: a for a in registry.apps()}
    assert registry.app_sources()["learn"] == "learn"
    (info,) = [p for p in registry.plugins if p.name == "learn"]
    assert info.source.startswith("llmeco-learn ") and info.loaded and info.error is None
    routes = {(s.method, s.path, s.scope) for s in specs["learn"].scopes}
    assert ("POST", "/v1/apps/learn/recommend", "chat") in routes
    assert ("PUT", "/v1/apps/learn/learners/{learner_id}", "chat") in routes


def test_profile_round_trip_and_weak_topics(client: httpx.Client) -> None:
    r = _put(client, "ada", level=2, goals=["fractions"], history=WEAK_HISTORY)
    assert r.status_code == 200, r.text
    r = client.get("/v1/apps/learn/learners/ada")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["level"] == 2 and body["goals"] == ["fractions"]
    assert [h["item_id"] for h in body["history"]] == [h["item_id"] for h in WEAK_HISTORY]
    assert body["weak_topics"] == ["fractions"]
    topics = {t["topic"]: t for t in body["topics"]}
    assert topics["sql-queries"]["mastered_level"] == 2 and not topics["sql-queries"]["weak"]


def test_recommend_without_the_model_targets_the_gaps(
    client: httpx.Client, fake: FakeEngine
) -> None:
    _put(client, "bob", level=1, history=WEAK_HISTORY)
    before = len(fake.requests)
    r = client.post(
        "/v1/apps/learn/recommend", json={"learner_id": "bob", "k": 4, "explain": False}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(fake.requests) == before  # explain=false: no generation
    assert body["model"] is None and body["usage"] is None
    items = body["items"]
    assert len(items) == 4
    seen = {h["item_id"] for h in WEAK_HISTORY}
    assert not seen & {i["id"] for i in items}
    assert items[0]["topic"] == "fractions"
    assert sum(i["topic"] == "fractions" for i in items) >= 3
    assert all(i["reasons"] and i["explanation"] is None for i in items)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)


def test_recommend_with_explanations_uses_the_model_once_per_item(
    client: httpx.Client, fake: FakeEngine
) -> None:
    _put(client, "cy", level=1, history=WEAK_HISTORY)
    before = len(fake.requests)
    body = {"learner_id": "cy", "k": 3, "max_tokens": 30}
    r = client.post("/v1/apps/learn/recommend", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(fake.requests) - before == 3
    assert all(p.max_tokens == 30 for p in fake.params[-3:])
    assert out["model"] == fake.name
    # one sentence: the first of the (30-character-capped) reply
    assert {i["explanation"] for i in out["items"]} == {REPLY[:30]}
    assert out["usage"]["completion_tokens"] == 3 * 30
    assert "fractions" in fake.prompts[-1]


def test_feedback_updates_the_profile_and_the_recommendations(client: httpx.Client) -> None:
    _put(client, "dee", level=1, history=WEAK_HISTORY)
    for item in ("fractions-1-exercise", "fractions-1-lesson", "fractions-2-lesson"):
        r = client.post(
            "/v1/apps/learn/feedback", json={"learner_id": "dee", "item_id": item, "score": 1.0}
        )
        assert r.status_code == 200, r.text
    profile = r.json()
    assert len(profile["history"]) == len(WEAK_HISTORY) + 3
    assert profile["weak_topics"] == []
    fractions = next(t for t in profile["topics"] if t["topic"] == "fractions")
    assert fractions["mastered_level"] == 2
    r = client.post("/v1/apps/learn/recommend", json={"learner_id": "dee", "explain": False})
    assert "fractions-2-lesson" not in {i["id"] for i in r.json()["items"]}


def test_a_new_learner_gets_items_at_their_level(client: httpx.Client) -> None:
    assert _put(client, "eve", level=3).status_code == 200
    r = client.post(
        "/v1/apps/learn/recommend", json={"learner_id": "eve", "k": 5, "explain": False}
    )
    items = r.json()["items"]
    assert len(items) == 5 and all(i["difficulty"] == 3 for i in items)
    assert len({i["topic"] for i in items}) == 5


def test_bad_input_is_4xx_never_500(client: httpx.Client) -> None:
    _put(client, "fay", level=1, history=WEAK_HISTORY)
    rec = "/v1/apps/learn/recommend"
    fb = "/v1/apps/learn/feedback"
    assert_openai_error(client.post(rec, json={"learner_id": "nobody"}), 404)
    assert_openai_error(client.get("/v1/apps/learn/learners/nobody"), 404)
    assert_openai_error(
        client.post(
            fb, json={"learner_id": "nobody", "item_id": "sql-queries-1-lesson", "score": 1}
        ),
        404,
    )
    assert_openai_error(
        client.post(fb, json={"learner_id": "fay", "item_id": "no-such-item", "score": 1}), 404
    )
    for score in (1.5, -0.1, "high", None):
        r = client.post(
            fb, json={"learner_id": "fay", "item_id": "sql-queries-1-lesson", "score": score}
        )
        assert_openai_error(r, 400)
    raw = '{"learner_id": "fay", "item_id": "sql-queries-1-lesson", "score": NaN}'
    r = client.post(fb, content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    for body in (
        {},
        {"learner_id": ""},
        {"learner_id": "fay", "k": 0},
        {"learner_id": "fay", "k": 21},
        {"learner_id": "fay", "max_tokens": 100000},
        {"learner_id": "fay", "mystery": 1},
        {"learner_id": "bad id with spaces"},
    ):
        assert_openai_error(client.post(rec, json=body), 400)
    assert_openai_error(
        client.post(rec, content=b"not json", headers={"content-type": "application/json"}), 400
    )
    assert_openai_error(client.post(rec, json={"learner_id": "fay", "model": "nope"}), 404)
    assert_openai_error(_put(client, "bad%20id", level=1), 400)
    assert_openai_error(_put(client, "fay", level=4), 400)
    assert_openai_error(_put(client, "fay", history=[{"item_id": "x", "score": 2}]), 400)
    # a history naming unknown items is refused whole: the old profile is untouched
    assert_openai_error(
        _put(client, "fay", level=3, history=[{"item_id": "nope", "score": 1}]), 404
    )
    profile = client.get("/v1/apps/learn/learners/fay").json()
    assert profile["level"] == 1 and len(profile["history"]) == len(WEAK_HISTORY)


def test_without_an_embedder_the_app_answers_404(tmp_path: Path) -> None:
    fake = FakeEngine()
    app = build_app(Settings(home=tmp_path), {fake.name: fake})
    with LiveServer(app) as live, httpx.Client(base_url=live.url) as c:
        r = c.put("/v1/apps/learn/learners/x", json={"level": 1, "history": []})
        assert "embedding model" in assert_openai_error(r, 404)["message"]


async def test_the_routes_need_the_chat_scope(tmp_path: Path, embedder: Embedder) -> None:
    settings = Settings(home=tmp_path, secret_key="test-secret")  # type: ignore[arg-type]
    auth = Authenticator.open(settings)
    fake = FakeEngine()
    try:
        app = build_app(settings, {fake.name: fake}, embedder, auth=auth)

        def key(scopes: set[str]) -> dict[str, str]:
            _, token = auth.keys.create("t", Grant(scopes=frozenset(scopes)))
            return {"Authorization": f"Bearer {token}"}

        calls = [
            ("PUT", "/v1/apps/learn/learners/k1", {"level": 1}),
            ("GET", "/v1/apps/learn/learners/k1", None),
            ("POST", "/v1/apps/learn/recommend", {"learner_id": "k1", "explain": False}),
            (
                "POST",
                "/v1/apps/learn/feedback",
                {"learner_id": "k1", "item_id": "sql-queries-1-lesson", "score": 0.5},
            ),
        ]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            chat = key({"chat"})
            for method, url, body in calls:
                content = None if body is None else json.dumps(body)
                headers = {"content-type": "application/json"}
                assert_openai_error(
                    await c.request(method, url, content=content, headers=headers), 401
                )
                for scopes in ({"embeddings"}, {"models"}, {"completions"}):
                    r = await c.request(
                        method, url, content=content, headers={**headers, **key(scopes)}
                    )
                    assert_openai_error(r, 403)
                r = await c.request(method, url, content=content, headers={**headers, **chat})
                assert r.status_code == 200, r.text
    finally:
        await auth.aclose()
