"""Trained classifiers behind ``/v1/tasks/classify`` and ``/v1/tasks/sentiment``.

A tiny classifier (random-weight Llama base + head) is trained in a fixture on a trivially
separable three-way toy set, straight from a JSONL file, and served by name next to the fake
chat engine: the requests that name it never reach the engine, answer from the trained head
with per-label probabilities, and get the same checks (bad input, unknown names, scopes and
model allow-lists) as every task route.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from fake_engine import FakeEngine
from fastapi import FastAPI
from rich.console import Console
from server_helpers import assert_openai_error

from llmeco.apps.classifier import (
    ServedClassifier,
    load_served_classifier,
    parse_classifier_option,
    restrict,
)
from llmeco.errors import ConfigError
from llmeco.governance.scopes import Grant
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.settings import Settings
from llmeco.training.classify import Classifier, Prediction, build_classifier

MOODS = {
    "positive": ["i love this bike", "what a wonderful day", "great service thank you"],
    "negative": ["this is terrible", "awful broken junk", "i hate waiting so long"],
    "neutral": ["the box is blue", "my order number is ten", "the shop opens at nine"],
}
HELD_OUT = [(f"ok so {p}", label) for label, phrases in MOODS.items() for p in phrases]


@pytest.fixture(autouse=True)
def _single_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (see the root conftest)."""


@pytest.fixture(scope="module")
def mood_dir(
    tiny_llama_dir: Path, cached_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """`llmeco train classify` output: a sentiment head trained to 100% on the toy set."""
    import torch

    from llmeco.training.config import load_config
    from llmeco.training.loop import train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("mood")
    rows = [
        {"text": f"{opener} {phrase}", "label": label}
        for label, phrases in MOODS.items()
        for phrase in phrases
        for opener in ("hi,", "hello,", "hey,", "", "good day,")
    ]
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    held = [{"text": t, "label": label} for t, label in HELD_OUT]
    (root / "held.jsonl").write_text("\n".join(json.dumps(r) for r in held) + "\n")
    out = root / "model"
    config = load_config(
        None,
        "classify",
        [
            f"output_dir={out}", f"model.base={tiny_llama_dir}",
            f"data.dataset={root / 'train.jsonl'}", f"data.validation={root / 'held.jsonl'}",
            "epochs=12", "batch_size=15", "seq_len=32", "optim.lr=5e-3",
            "optim.warmup_steps=0", "eval_every=0", "tensorboard=false",
            "early_stopping={patience: 2, metric: eval_accuracy}",
        ],
    )  # fmt: skip
    quiet = Console(quiet=True)
    metrics = train(config, settings=Settings(home=cached_home), console=quiet, show_progress=False)
    assert metrics["eval_accuracy"] == 1.0
    return out


@pytest.fixture
def mood(mood_dir: Path, settings: Settings) -> Iterator[ServedClassifier]:
    served = load_served_classifier("mood", str(mood_dir), settings)
    yield served
    served.close()


@pytest.fixture
def intents(tiny_llama_dir: Path, tmp_path: Path, settings: Settings) -> Iterator[ServedClassifier]:
    """An untrained head over other labels (what it predicts does not matter here)."""
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    model = build_classifier(tiny_llama_dir, ["billing", "shipping"], pad_id=2, dtype=torch.float32)
    model.save_pretrained(tmp_path / "intents")
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(tmp_path / "intents")
    served = load_served_classifier("intents", str(tmp_path / "intents"), settings)
    yield served
    served.close()


@pytest.fixture
async def cclient(
    settings: Settings, fake: FakeEngine, mood: ServedClassifier, intents: ServedClassifier
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings, {fake.name: fake}, classifiers={"mood": mood, "intents": intents})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_named_classifier_labels_every_held_out_text_with_probabilities(
    cclient: httpx.AsyncClient, fake: FakeEngine
) -> None:
    for route in ("classify", "sentiment"):
        for text, gold in HELD_OUT:
            r = await cclient.post(f"/v1/tasks/{route}", json={"model": "mood", "text": text})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["label"] == gold, (route, text, body)
            assert body["model"] == "mood" and body["object"] == f"task.{route}"
            assert set(body["scores"]) == set(MOODS)
            assert sum(body["scores"].values()) == pytest.approx(1.0)
            assert body["scores"][gold] == max(body["scores"].values())
            assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] == 0
    assert fake.requests == []  # the chat model was never asked


async def test_a_subset_of_labels_restricts_the_answer(cclient: httpx.AsyncClient) -> None:
    text = "ok so i love this bike"  # positive, which the caller does not allow
    body = (
        await cclient.post(
            "/v1/tasks/classify",
            json={"model": "mood", "text": text, "labels": ["negative", "neutral"]},
        )
    ).json()
    assert body["label"] in {"negative", "neutral"}
    assert set(body["scores"]) == {"negative", "neutral"}
    assert sum(body["scores"].values()) == pytest.approx(1.0)


async def test_bad_classifier_requests(cclient: httpx.AsyncClient) -> None:
    err = assert_openai_error(
        await cclient.post(
            "/v1/tasks/classify",
            json={"model": "mood", "text": "hi", "labels": ["positive", "sarcastic"]},
        ),
        400,
    )
    assert err["param"] == "labels" and "sarcastic" in err["message"]
    assert "its labels are negative, neutral, positive" in err["message"]
    err = assert_openai_error(
        await cclient.post("/v1/tasks/classify", json={"model": "moood", "text": "hi"}), 404
    )
    assert err["param"] == "model" and "mood" in err["message"] and "intents" in err["message"]
    err = assert_openai_error(
        await cclient.post("/v1/tasks/sentiment", json={"model": "intents", "text": "hi"}), 400
    )
    assert "billing" in err["message"] and "/v1/tasks/classify" in err["message"]
    err = assert_openai_error(
        await cclient.post("/v1/tasks/classify", json={"model": "mood", "text": "   "}), 400
    )
    assert err["param"] == "text"
    # a chat model still needs the caller's labels
    err = assert_openai_error(await cclient.post("/v1/tasks/classify", json={"text": "hi"}), 400)
    assert err["param"] == "labels"


async def test_classifiers_are_listed_and_described(cclient: httpx.AsyncClient) -> None:
    cards = {m["id"]: m for m in (await cclient.get("/v1/models")).json()["data"]}
    assert cards["mood"]["task"] == "classify"
    assert sorted(cards["mood"]["labels"]) == sorted(MOODS)
    assert cards["fake-model"]["task"] == "generate"
    assert (await cclient.get("/v1/models/mood")).json()["task"] == "classify"
    schema = (await cclient.get("/openapi.json")).json()["components"]["schemas"]
    request = schema["ClassifyRequest"]
    assert "labels" not in request.get("required", [])
    assert "trained classifier" in request["properties"]["model"]["description"]
    assert "scores" in schema["LabelResponse"]["properties"]
    assert "--classifier" in schema["SentimentRequest"]["properties"]["model"]["description"]


def test_names_must_not_clash_and_options_parse(
    settings: Settings, fake: FakeEngine, mood: ServedClassifier
) -> None:
    with pytest.raises(ValueError, match="already used"):
        build_app(settings, {fake.name: fake}, classifiers={fake.name: mood})
    assert parse_classifier_option("intents=runs/x") == ("intents", "runs/x")
    assert parse_classifier_option(" i = intents@production ") == ("i", "intents@production")
    for bad in ("intents", "=x", "x="):
        with pytest.raises(ConfigError, match="NAME=REF"):
            parse_classifier_option(bad)


def test_restrict_renormalises_over_the_allowed_labels() -> None:
    p = Prediction("a", 0.6, {"a": 0.6, "b": 0.3, "c": 0.1})
    assert restrict(p, None) is p
    q = restrict(p, ["b", "c"])
    assert q.label == "b" and q.scores == pytest.approx({"b": 0.75, "c": 0.25})


class _GatedClassifier(Classifier):
    """The real classifier whose first forward pass waits for a gate (so requests queue up),
    recording the size of every batch."""

    def __init__(self, inner: Classifier) -> None:
        self.__dict__.update(inner.__dict__)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.batches: list[int] = []

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]:
        self.batches.append(len(texts))
        self.entered.set()
        assert self.gate.wait(30)
        return super().predict(texts, batch_size)


async def test_queued_requests_share_a_batch_off_the_event_loop(
    mood: ServedClassifier, settings: Settings, fake: FakeEngine
) -> None:
    gated = _GatedClassifier(mood.classifier)
    served = ServedClassifier("gated", gated, max_batch=32)
    app: FastAPI = build_app(settings, {fake.name: fake}, classifiers={"gated": served})
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:

            async def label(text: str) -> str:
                r = await c.post("/v1/tasks/classify", json={"model": "gated", "text": text})
                assert r.status_code == 200, r.text
                return str(r.json()["label"])

            first = asyncio.create_task(label(HELD_OUT[0][0]))
            while not gated.entered.is_set():  # the worker is now blocked in its first pass
                await asyncio.sleep(0.01)
            rest = [asyncio.create_task(label(t)) for t, _ in HELD_OUT[1:]]
            # the event loop still serves other requests while the classifier works
            assert (await c.get("/health")).status_code == 200
            while served.queued() < len(rest):  # every other request has queued
                await asyncio.sleep(0.01)
            gated.gate.set()
            labels = [await first, *[await t for t in rest]]
    finally:
        served.close()
    assert labels == [gold for _, gold in HELD_OUT]
    assert gated.batches == [1, len(HELD_OUT) - 1]


async def test_scopes_and_model_allow_lists_apply_to_classifiers(
    tmp_path: Path, fake: FakeEngine, mood: ServedClassifier
) -> None:
    settings = Settings(home=tmp_path / "gov", secret_key="test-secret")  # type: ignore[arg-type]
    auth = Authenticator.open(settings)
    try:
        app = build_app(settings, {fake.name: fake}, auth=auth, classifiers={"mood": mood})

        def key(scopes: set[str], models: frozenset[str] = frozenset()) -> dict[str, str]:
            grant = Grant(scopes=frozenset(scopes), models=models)
            _, token = auth.keys.create("t", grant)
            return {"Authorization": f"Bearer {token}"}

        body = {"model": "mood", "text": "ok so this is terrible"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            assert_openai_error(await c.post("/v1/tasks/classify", json=body), 401)
            metadata_only = key({"models"})
            assert_openai_error(
                await c.post("/v1/tasks/classify", json=body, headers=metadata_only), 403
            )
            other_model = key({"chat"}, frozenset({fake.name}))
            for route in ("classify", "sentiment"):
                assert_openai_error(
                    await c.post(f"/v1/tasks/{route}", json=body, headers=other_model), 403
                )
            listed = (await c.get("/v1/models", headers=other_model)).json()["data"]
            assert [m["id"] for m in listed] == [fake.name]  # the classifier is hidden
            allowed = key({"chat"}, frozenset({"mood"}))
            r = await c.post("/v1/tasks/sentiment", json=body, headers=allowed)
            assert r.status_code == 200, r.text
            assert r.json()["label"] == "negative"
    finally:
        await auth.aclose()


def test_serve_loads_classifiers_from_a_directory_and_the_registry(
    mood_dir: Path, tiny_llama_dir: Path, settings: Settings
) -> None:
    from llmeco.registry.registry import Registry
    from llmeco.server.runtime import load_classifiers

    registry = Registry.open(settings)
    version = registry.register(mood_dir, "mood", actor="test")
    registry.set_alias("mood", version.version, "production", actor="test")
    loaded = load_classifiers([f"a={mood_dir}", "b=mood@production", "c=mood:1"], settings)
    try:
        assert list(loaded) == ["a", "b", "c"]
        texts = [t for t, _ in HELD_OUT]
        golds = [gold for _, gold in HELD_OUT]
        for served in loaded.values():
            assert sorted(served.labels) == sorted(MOODS)
            assert [p.label for p in asyncio.run(served.predict(texts))] == golds
        assert loaded["b"].source == "mood@production"
    finally:
        for served in loaded.values():
            served.close()
    with pytest.raises(ConfigError, match="distinct"):
        load_classifiers([f"a={mood_dir}", f"a={mood_dir}"], settings)
    with pytest.raises(ConfigError, match="not a classifier"):
        load_classifiers([f"x={tiny_llama_dir}"], settings)  # a causal LM
