"""The explanations plugin (``plugins/llmeco-explain``) in a real server on a free port.

The plugin is installed in the venv (its ``llmeco`` entry point) and reaches the app only
through the plugin registry's ``register_apps``. Models are tiny random-weight ones: a
Llama served by the real engine and a classification head on the same base, so what is
checked is the contract — probabilities, tokens that join back to the input, attributions
whose integrated-gradients completeness holds, engine logprobs that the attribution model
reproduces, escaped HTML, bad input as 4xx (never 500), 429 when busy, and the route's scope.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmeco.apps.classifier import ServedClassifier, load_served_classifier
from llmeco.engine.async_engine import AsyncEngine
from llmeco.governance.scopes import Grant
from llmeco.plugins import get_registry
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "server"))
from llmeco_explain.service import Explainer
from server_helpers import LiveServer, assert_openai_error

pytestmark = pytest.mark.slow
LABELS = ["billing", "shipping", "returns"]
TEXT = 'My parcel never arrived & the <b>tracking</b> says "delivered".'


@pytest.fixture(autouse=True)
def _single_torch_thread(one_torch_thread: None) -> None:
    """One torch thread (see the root conftest)."""


@pytest.fixture(scope="module")
def classifier(
    tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory, cached_home: Path
) -> Iterator[ServedClassifier]:
    """A classification head on the tiny base, saved as ``llmeco train classify`` saves."""
    import torch
    from transformers import AutoTokenizer

    from llmeco.training.classify import build_classifier

    torch.manual_seed(0)
    model = build_classifier(tiny_llama_dir, LABELS, pad_id=2, dtype=torch.float32)
    with torch.no_grad():  # a trained model's pad row is not the zero row a fresh one has
        model.get_input_embeddings().weight[2].normal_(0.0, 0.02)
        model.score.weight.normal_(0.0, 2.0)
    out = tmp_path_factory.mktemp("intents")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(out)
    served = load_served_classifier("intents", str(out), Settings(home=cached_home))
    yield served
    served.close()


@pytest.fixture(scope="module")
def engine(tiny_llama_dir: Path, cached_home: Path) -> Iterator[AsyncEngine]:
    eng = AsyncEngine.from_ref(str(tiny_llama_dir), Settings(home=cached_home, threads=1))
    yield eng
    asyncio.run(eng.shutdown(timeout=1))


@pytest.fixture(scope="module")
def server(
    engine: AsyncEngine, classifier: ServedClassifier, cached_home: Path
) -> Iterator[LiveServer]:
    app = build_app(
        Settings(home=cached_home), {"tiny": engine}, classifiers={"intents": classifier}
    )
    app.state.llmeco_explain = Explainer(max_running=1, max_waiting=1, max_tokens=96)
    with LiveServer(app) as live:
        yield live
    app.state.llmeco_explain.close()


def _post(c: httpx.Client, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return c.post("/v1/apps/explain", json=body, **kw)


def test_the_app_comes_from_the_plugin_entry_point() -> None:
    registry = get_registry()
    specs = {a.name: a for a in registry.apps()}
    assert "explain" in specs
    assert registry.app_sources()["explain"] == "explain"  # the entry point's name
    (info,) = [p for p in registry.plugins if p.name == "explain"]
    assert info.source.startswith("llmeco-explain ") and not info.builtin and info.loaded
    assert info.module == "llmeco_explain.plugin" and info.error is None
    (scope,) = specs["explain"].scopes
    assert (scope.method, scope.path, scope.scope) == ("POST", "/v1/apps/explain", "chat")


def test_trained_classifier_with_integrated_gradients(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        r = _post(c, {"kind": "classification", "model": "intents", "input": TEXT, "steps": 64})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "explanation" and body["method"] == "integrated_gradients"
    assert body["label"] in LABELS and set(body["probabilities"]) == set(LABELS)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["probabilities"][body["label"]] == max(body["probabilities"].values())
    assert "".join(body["tokens"]) == TEXT
    assert len(body["scores"]) == len(body["tokens"]) == len(body["segments"]) > 5
    target = body["target"]
    assert target["label"] == body["label"] and target["unit"] == "probability"
    assert target["value"] == pytest.approx(body["probabilities"][body["label"]], abs=1e-5)
    change = target["value"] - body["baseline_value"]
    assert abs(change) > 1e-3
    assert abs(body["completeness_delta"]) < 0.05 * abs(change)
    assert body["usage"]["prompt_tokens"] == len(body["tokens"])


def test_occlusion_of_another_label(server: LiveServer) -> None:
    body = {
        "kind": "classification",
        "model": "intents",
        "input": "where is my refund",
        "method": "occlusion",
        "window": 2,
        "target_label": "returns",
    }
    with httpx.Client(base_url=server.url, timeout=120) as c:
        r = _post(c, body)
        plain = c.post("/v1/tasks/classify", json={"model": "intents", "text": body["input"]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["method"] == "occlusion_delete" and out["target"]["label"] == "returns"
    assert out["baseline_value"] is None and out["completeness_delta"] is None
    # the same classifier, the same probabilities as the task endpoint
    assert out["probabilities"] == pytest.approx(plain.json()["scores"], abs=1e-4)
    assert out["target"]["value"] == pytest.approx(out["probabilities"]["returns"], abs=1e-5)


def test_prompted_classification_attributes_only_the_callers_text(server: LiveServer) -> None:
    body = {"kind": "classification", "model": "tiny", "input": TEXT, "labels": LABELS, "steps": 16}
    with httpx.Client(base_url=server.url, timeout=120) as c:
        r = _post(c, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["label"] in LABELS
    assert sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert "".join(out["tokens"]) == TEXT  # the system prompt and template are not attributed
    assert out["target"]["unit"] == "logprob" and out["target"]["label"] == out["label"]
    assert out["target"]["value"] < 0
    assert abs(out["completeness_delta"]) < 0.05 * abs(
        out["target"]["value"] - out["baseline_value"]
    )


def test_generation_logprobs_match_the_attribution_model(server: LiveServer) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one, please."},
    ]
    body = {
        "kind": "generation",
        "model": "tiny",
        "messages": messages,
        "max_tokens": 6,
        "top_logprobs": 3,
        "steps": 16,
    }
    with httpx.Client(base_url=server.url, timeout=120) as c:
        r = _post(c, body)
        first = _post(c, {**body, "target": "first_token", "method": "occlusion"})
    assert r.status_code == 200, r.text
    out = r.json()
    answer = out["answer"]
    assert 1 <= len(answer["tokens"]) <= 6
    for tok in answer["tokens"]:
        assert len(tok["top_logprobs"]) == 3
        assert tok["logprob"] <= 0
        assert tok["top_logprobs"][0]["logprob"] >= tok["logprob"] - 1e-4  # greedy: the top
    # the engine's logprob of its own answer = the transformers model's, teacher-forced
    assert out["target"]["kind"] == "sequence"
    assert out["target"]["value"] == pytest.approx(answer["logprob"], abs=0.05)
    # both user messages are attributed, each joining back to its text
    by_segment: dict[int, str] = {}
    for piece, segment in zip(out["tokens"], out["segments"], strict=True):
        by_segment[segment] = by_segment.get(segment, "") + piece
    assert by_segment == {0: "Name a colour.", 1: "Another one, please."}
    assert out["usage"]["completion_tokens"] == len(answer["tokens"])
    assert first.status_code == 200, first.text
    f = first.json()
    assert f["target"]["kind"] == "first_token"
    assert f["target"]["value"] == pytest.approx(answer["tokens"][0]["logprob"], abs=0.05)


def test_html_view_escapes_everything(server: LiveServer) -> None:
    evil = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    body = {
        "kind": "classification",
        "model": "tiny",
        "input": evil,
        "labels": ["<i>good</i>", 'bad"><script>'],
        "method": "occlusion",
    }
    with httpx.Client(base_url=server.url, timeout=120) as c:
        by_query = c.post("/v1/apps/explain?format=html", json=body)
        by_accept = _post(c, body, headers={"Accept": "text/html,application/xhtml+xml"})
        as_json = _post(c, body, headers={"Accept": "application/json, text/html"})
    for r in (by_query, by_accept):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        page = _Page(r.text)
        assert page.tags <= SAFE_TAGS, page.tags - SAFE_TAGS  # no tag of the input got through
        assert "".join(page.tokens) == evil  # every token shown, as text
        assert {"<i>good</i>", 'bad"><script>'} <= set(page.cells)
        assert "legend" in r.text and "<style>" in r.text
    assert as_json.headers["content-type"].startswith("application/json")


SAFE_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "h1",
    "h2",
    "q",
    "p",
    "b",
    "div",
    "span",
    "table",
    "tr",
    "td",
}


class _Page(HTMLParser):
    """Start tags, the text of token spans, and table cells of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.tokens: list[str] = []
        self.cells: list[str] = []
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "span" and ("class", "t") in attrs:
            self._in = "token"
            self.tokens.append("")
        elif tag == "td":
            self._in = "cell"
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "token":
            self.tokens[-1] += data
        elif self._in == "cell":
            self.cells[-1] += data


def test_bad_input_is_4xx_never_500(server: LiveServer) -> None:
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"kind": "classification", "model": "nope", "input": "hi"}, 404, "model"),
        ({"kind": "classification", "model": "intents", "input": ""}, 400, "input"),
        ({"kind": "classification", "model": "intents", "input": "   "}, 400, "input"),
        ({"kind": "classification", "model": "intents", "input": "word " * 200}, 400, "input"),
        (
            {"kind": "classification", "model": "tiny", "input": "word " * 200, "labels": LABELS},
            400,
            "input",
        ),
        ({"kind": "regression", "model": "intents", "input": "hi"}, 400, None),
        ({"model": "intents", "input": "hi"}, 400, None),
        ({"kind": "classification", "model": "tiny", "input": "hi"}, 400, "labels"),
        (
            {"kind": "classification", "model": "intents", "input": "hi", "labels": LABELS},
            400,
            "labels",
        ),
        (
            {
                "kind": "classification",
                "model": "intents",
                "input": "hi",
                "target_label": "weather",
            },
            400,
            "target_label",
        ),
        (
            {"kind": "classification", "model": "tiny", "input": "hi", "labels": ["a", "a"]},
            400,
            "labels",
        ),
        ({"kind": "generation", "model": "intents", "prompt": "hi"}, 400, "model"),
        ({"kind": "generation", "model": "nope", "prompt": "hi"}, 404, "model"),
        ({"kind": "generation", "model": "tiny"}, 400, "messages"),
        (
            {
                "kind": "generation",
                "model": "tiny",
                "prompt": "hi",
                "messages": [{"role": "user", "content": "hi"}],
            },
            400,
            "messages",
        ),
        (
            {
                "kind": "generation",
                "model": "tiny",
                "messages": [{"role": "system", "content": "x"}],
            },
            400,
            "messages",
        ),
        ({"kind": "generation", "model": "tiny", "prompt": "word " * 200}, 400, "messages"),
        ({"kind": "generation", "model": "tiny", "prompt": "hi", "steps": 1}, 400, "steps"),
        ({"kind": "generation", "model": "tiny", "input": "hi"}, 400, "input"),
    ]
    with httpx.Client(base_url=server.url, timeout=120) as c:
        for body, status, param in cases:
            err = assert_openai_error(_post(c, body), status)
            if param is not None:  # schema errors name it under the kind: generation.steps
                assert err["param"].split(".")[-1] == param, (body, err)
        assert_openai_error(c.post("/v1/apps/explain", content=b"{not json"), 400)
        r = c.post("/v1/apps/explain?format=pdf", json=cases[2][0])
        assert assert_openai_error(r, 400)["param"].endswith("format")


def test_busy_explainer_answers_429(server: LiveServer, engine: AsyncEngine) -> None:
    body = {"kind": "classification", "model": "intents", "input": "hi", "method": "occlusion"}

    async def while_full() -> httpx.Response:
        explainer = _explainer(server)
        async with (
            explainer.admit(),  # 1 running
            explainer.admit(),  # + 1 waiting: full
            httpx.AsyncClient(base_url=server.url, timeout=60) as c,
        ):
            return await c.post("/v1/apps/explain", json=body)

    r = asyncio.run(while_full())
    assert_openai_error(r, 429)
    assert r.headers.get("retry-after")
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert _post(c, body).status_code == 200  # the places were given back


def _explainer(server: LiveServer) -> Explainer:
    app = server.server.config.app
    explainer = app.state.llmeco_explain
    assert isinstance(explainer, Explainer)
    return explainer


async def test_the_route_needs_the_chat_scope(
    tmp_path: Path, classifier: ServedClassifier, engine: AsyncEngine
) -> None:
    settings = Settings(home=tmp_path / "gov", secret_key="test-secret")  # type: ignore[arg-type]
    auth = Authenticator.open(settings)
    try:
        app = build_app(settings, {"tiny": engine}, auth=auth, classifiers={"intents": classifier})

        def key(scopes: set[str], models: frozenset[str] = frozenset()) -> dict[str, str]:
            _, token = auth.keys.create("t", Grant(scopes=frozenset(scopes), models=models))
            return {"Authorization": f"Bearer {token}"}

        body = {"kind": "classification", "model": "intents", "input": "hi", "method": "occlusion"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert_openai_error(await c.post("/v1/apps/explain", json=body), 401)
            for scopes in ({"embeddings"}, {"models"}, {"completions"}):
                r = await c.post("/v1/apps/explain", json=body, headers=key(scopes))
                assert_openai_error(r, 403)
            other = key({"chat"}, frozenset({"tiny"}))  # the classifier is not on its list
            assert_openai_error(await c.post("/v1/apps/explain", json=body, headers=other), 403)
            r = await c.post("/v1/apps/explain", json=body, headers=key({"chat"}))
            assert r.status_code == 200, r.text
    finally:
        await auth.aclose()
