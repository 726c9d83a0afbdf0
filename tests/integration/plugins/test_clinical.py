"""The clinical plugin (``plugins/llmeco-clinical``) in a real server on a free port.

The plugin reaches the app only through the plugin registry (``register_apps``), and its
clinical identifiers reach the governance redactor through ``register_redaction_rules``.
Most checks use the fake engine or no model at all (rules + template summary): what is
checked is the contract. One test runs the real default model, because only a real
tokenizer and grammar show that constrained decoding yields a record that fits the schema.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from llmeco_clinical import extract, lexicon
from llmeco_clinical.summary import DISCLAIMER

from llmeco.engine.async_engine import AsyncEngine
from llmeco.governance.redact import redact
from llmeco.governance.scopes import Grant
from llmeco.plugins import get_registry
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "server"))
from fake_engine import FakeEngine
from server_helpers import LiveServer, assert_openai_error

URL = "/v1/apps/clinical/analyze"
NOTES = [
    json.loads(line)
    for line in (lexicon.data_dir() / "notes.jsonl").read_text().splitlines()
    if line
]
LLM_REPLY = json.dumps(
    {
        "problems": ["gout", "made-up disease"],
        "medications": [
            {"name": "Tamsulosin", "dose": "0.4 mg", "frequency": "nightly"},
            {"name": "unicornium", "dose": "5 mg", "frequency": "daily"},
        ],
        "allergies": [],
    }
)
NOTE = (
    "Patient: Omar Haddad\nDOB: 1950-02-11\nMRN: A1234567\n"
    "Mr. Haddad has gout and an enlarged prostate.\n"
    "Medications:\n- Coumadin 5 mg daily\n- Advil 400 mg TID\n- tamsulosin 0.4 mg at bedtime\n"
    "Allergies: penicillin.\n"
)


@pytest.fixture(scope="module")
def fake() -> FakeEngine:
    return FakeEngine(reply=LLM_REPLY, max_model_len=2048)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake: FakeEngine) -> Iterator[LiveServer]:
    app = build_app(Settings(home=tmp_path_factory.mktemp("clinical")), {fake.name: fake})
    with LiveServer(app) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _post(c: httpx.Client, **body: Any) -> httpx.Response:
    return c.post(URL, json=body)


def test_the_app_and_its_redaction_rules_come_from_the_plugin() -> None:
    registry = get_registry()
    assert registry.app_sources()["clinical"] == "clinical"
    (info,) = [p for p in registry.plugins if p.name == "clinical"]
    assert info.source.startswith("llmeco-clinical ") and info.loaded and info.error is None
    kinds = {rule.kind for rule in registry.redaction_rules()}
    assert {"MRN", "DOB", "NAME", "ADDRESS"} <= kinds
    assert "DATE" not in kinds  # plain dates are redacted in notes only, not in every log
    # so the audit ledger and the logs, which redact with the governance redactor, hide them
    assert redact("Patient: Omar Haddad, MRN: A1234567, DOB: 1950-02-11") == (
        "Patient: [NAME], MRN: [MRN], DOB: [DOB]"
    )


def test_every_shipped_note_is_deidentified_and_analysed_without_a_model(
    client: httpx.Client, fake: FakeEngine
) -> None:
    before = len(fake.requests)
    for note in NOTES[:12]:
        r = _post(client, note=note["text"], extractor="rules", summary="template")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] is None and body["usage"] is None
        assert body["not_medical_advice"] is True and body["disclaimer"] == DISCLAIMER
        assert body["summary"].endswith(DISCLAIMER)
        for span in note["phi"]:
            if span["kind"] != "PHONE":  # short local numbers in prose are a known gap
                assert span["text"] not in body["redacted_note"], span
        assert {m["name"] for m in body["medications"]} <= {m["name"] for m in note["medications"]}
    assert len(fake.requests) == before


def test_interactions_are_flagged_from_brand_names(client: httpx.Client) -> None:
    r = _post(client, note=NOTE, extractor="rules", summary="template")
    body = r.json()
    meds = {m["name"]: m for m in body["medications"]}
    assert meds["warfarin"]["written_as"] == "Coumadin" and meds["warfarin"]["dose"] == "5 mg"
    assert meds["ibuprofen"]["frequency"] == "three times daily"
    assert "tamsulosin" not in meds  # not in the lexicon: the rules cannot know it
    (flag,) = body["interactions"]
    assert flag["drugs"] == ["warfarin", "ibuprofen"] and flag["severity"] == "major"
    assert "bleeding" in body["summary"]
    assert body["allergies"] == ["penicillin"]
    assert {p["kind"]: p["count"] for p in body["phi"]} == {"NAME": 2, "DOB": 1, "MRN": 1}


def test_the_model_sees_only_the_redacted_note_and_its_items_are_grounded(
    client: httpx.Client, fake: FakeEngine
) -> None:
    before = len(fake.requests)
    r = _post(client, note=NOTE, max_tokens=600, summary="llm")
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(fake.requests) - before == 2  # the extraction and the summary
    for prompt in fake.prompts[-2:]:
        assert "Haddad" not in prompt and "A1234567" not in prompt and "[MRN]" in prompt
    structured = [p.structured for p in fake.params[-2:] if p.structured is not None]
    assert len(structured) == 1 and structured[0].schema == extract.SCHEMA
    meds = {m["name"]: m for m in body["medications"]}
    assert meds["tamsulosin"]["source"] == "llm" and meds["tamsulosin"]["frequency"] == "at bedtime"
    assert "unicornium" not in meds and "made-up disease" not in body["problems"]
    assert body["model"] == fake.name and body["usage"]["completion_tokens"] > 0
    assert body["summary"].endswith(DISCLAIMER)
    only_llm = _post(client, note=NOTE, extractor="llm", summary="none").json()
    assert {m["name"] for m in only_llm["medications"]} == {"tamsulosin", "unicornium"}
    assert only_llm["summary"] is None and only_llm["not_medical_advice"] is True


def test_bad_input_is_4xx_never_500(client: httpx.Client) -> None:
    for body in (
        {},
        {"note": ""},
        {"note": "   \n  "},
        {"note": "x" * 100_001},
        {"note": "ok", "extractor": "magic"},
        {"note": "ok", "summary": "poem"},
        {"note": "ok", "max_tokens": 0},
        {"note": "ok", "surprise": True},
        {"note": 42},
    ):
        assert_openai_error(client.post(URL, json=body), 400)
    r = client.post(URL, content=b"{not json", headers={"content-type": "application/json"})
    assert_openai_error(r, 400)
    # longer than the model's context (the fake has 2048 positions): 400, not 500
    huge = NOTE + "Progress: stable. " * 400
    error = assert_openai_error(_post(client, note=huge), 400)
    assert "context" in error["message"]
    assert_openai_error(_post(client, note=NOTE, model="no-such-model"), 404)
    # the same note without a model is fine
    assert _post(client, note=huge, extractor="rules", summary="template").status_code == 200


async def test_the_route_needs_the_chat_scope(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, secret_key="test-secret")  # type: ignore[arg-type]
    auth = Authenticator.open(settings)
    fake = FakeEngine()
    try:
        app = build_app(settings, {fake.name: fake}, auth=auth)

        def key(scopes: set[str]) -> dict[str, str]:
            _, token = auth.keys.create("t", Grant(scopes=frozenset(scopes)))
            return {"Authorization": f"Bearer {token}"}

        body = {"note": NOTE, "extractor": "rules", "summary": "template"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert_openai_error(await c.post(URL, json=body), 401)
            for scopes in ({"embeddings"}, {"models"}, {"completions"}):
                assert_openai_error(await c.post(URL, json=body, headers=key(scopes)), 403)
            r = await c.post(URL, json=body, headers=key({"chat"}))
            assert r.status_code == 200, r.text
    finally:
        await auth.aclose()


@pytest.mark.slow
def test_the_real_model_extraction_always_fits_the_schema(
    cached_home: Path, default_model_dir: Path
) -> None:
    engine = AsyncEngine.from_ref("default", Settings(home=cached_home))
    app = build_app(Settings(home=cached_home), {engine.model_info.name: engine})
    try:
        with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=300) as c:
            note = NOTES[1]["text"]
            r = c.post(URL, json={"note": note, "extractor": "llm", "summary": "none"})
            assert r.status_code == 200, r.text
            body = r.json()
            record = {
                "problems": body["problems"],
                "medications": [
                    {"name": m["written_as"], "dose": m["dose"], "frequency": m["frequency"]}
                    for m in body["medications"]
                ],
                "allergies": body["allergies"],
            }
            jsonschema.validate(record, extract.SCHEMA)
            assert body["model"] == engine.model_info.name and body["usage"]["completion_tokens"]
    finally:
        asyncio.run(engine.shutdown(timeout=1))
