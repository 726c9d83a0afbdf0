"""The feedback loop end to end: support answers → feedback → ``llmeco feedback export`` →
``llmeco train sft`` on the exported file.

A real app (in-process ASGI) over a real engine running a tiny random-weight Llama, the
packaged embedder and a real knowledge base; the export and the training run through the CLI
against the same project home, as an operator would run them. The answers are gibberish (random
weights): what is under test is where every piece of text goes, not what the model says.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from typer.testing import CliRunner

from llmeco.apps.answerability import open_gate
from llmeco.apps.conversations import ConversationLog
from llmeco.apps.support.calibration import GateStore
from llmeco.apps.support.desk import SupportDesk
from llmeco.cli.main import app as cli
from llmeco.engine.async_engine import AsyncEngine
from llmeco.governance.crypto import Cipher
from llmeco.governance.redact import redact
from llmeco.rag.kb import KnowledgeBase
from llmeco.server import build_app
from llmeco.settings import Settings
from llmeco.store import Store
from llmeco.training.runlog import read_log

if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder

pytestmark = pytest.mark.slow

EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
RATED_UP = f"How long do refunds take? Please write to {EMAIL}"
# A short follow-up: retrieval prepends the previous question to it, but what is logged (and
# exported) must be what the user wrote.
RATED_DOWN = "How long is the frame warranty?"
CORRECTION = f"Every bicycle frame has a ten year warranty; call us on {PHONE} to claim it."
UNRATED_LATER = "When is the shop in Calder open?"  # same session, after the rated turns
UNRATED_OTHER = "How long is the battery warranty?"  # another session, never rated


async def _ask(client: httpx.AsyncClient, session: str, question: str) -> dict[str, Any]:
    """One support turn (the client sends only the new question); returns the answer's body."""
    r = await client.post(
        "/v1/chat/completions",
        json={
            "model": "support:acme",
            "messages": [{"role": "user", "content": question}],
            "max_tokens": 6,
            "temperature": 0,
        },
        headers={"x-session-id": session},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["choices"][0]["finish_reason"] == "stop", body  # answered, not handed off
    assert body["citations"]
    return body


def _content(body: dict[str, Any]) -> str:
    text: str = body["choices"][0]["message"]["content"]
    return text


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


async def test_feedback_is_exported_and_trains_two_sft_steps(
    tmp_path: Path,
    tiny_llama_dir: Path,
    embedder: Embedder,
    acme_handbook: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LLMECO_HOME", str(home))  # the CLI commands below open the same home
    monkeypatch.setenv("LLMECO_THREADS", "1")
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    KnowledgeBase.create(store, "acme", embedder).add_text("handbook.md", acme_handbook)
    # The loop is under test here, not the hand-off decision: this knowledge base's own gate
    # (as `llmeco kb calibrate` would store one) answers every turn.
    GateStore(store).put("acme", open_gate())
    log = ConversationLog(store, Cipher.from_settings(settings))
    desk = SupportDesk(store, embedder, log, company="Acme")
    engine = AsyncEngine.from_ref(str(tiny_llama_dir), settings)
    try:
        server = build_app(settings, {engine.model_info.name: engine}, support=desk)
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=120) as c:
            liked = await _ask(c, "s-1", RATED_UP)
            disliked = await _ask(c, "s-1", RATED_DOWN)
            await _ask(c, "s-1", UNRATED_LATER)
            await _ask(c, "s-2", UNRATED_OTHER)
            for body in (
                {"response_id": liked["id"], "rating": "up"},
                {"response_id": disliked["id"], "rating": "down", "correction": CORRECTION},
            ):
                r = await c.post("/v1/feedback", json=body)
                assert r.status_code == 200, r.text
    finally:
        await engine.shutdown(timeout=1)

    runner = CliRunner()
    sft_file, pref_file = tmp_path / "out" / "sft.jsonl", tmp_path / "out" / "pref.jsonl"
    for fmt, path, count in (("sft", sft_file, 2), ("preference", pref_file, 1)):
        result = runner.invoke(cli, ["feedback", "export", "--format", fmt, "--out", str(path)])
        assert result.exit_code == 0, result.output
        assert f"wrote {count} {fmt} records" in " ".join(result.output.split())

    # What was stored was redacted, so the export is too: the question's email and the
    # correction's phone number never reach the training data.
    user_1 = {"role": "user", "content": redact(RATED_UP)}
    answer_1 = {"role": "assistant", "content": redact(_content(liked))}
    user_2 = {"role": "user", "content": RATED_DOWN}
    fixed = redact(CORRECTION)
    assert "[EMAIL]" in user_1["content"] and "[PHONE]" in fixed
    assert _lines(sft_file) == [
        {"messages": [user_1, answer_1]},  # the liked answer as given
        {"messages": [user_1, answer_1, user_2, {"role": "assistant", "content": fixed}]},
    ]
    assert _lines(pref_file) == [
        {
            "prompt": [user_1, answer_1, user_2],
            "chosen": fixed,
            "rejected": redact(_content(disliked)),
        }
    ]
    for path in (sft_file, pref_file):
        raw = path.read_text(encoding="utf-8")
        assert EMAIL not in raw and PHONE not in raw
        # unrated turns (later in the rated session, or in another session) are left out
        assert UNRATED_LATER not in raw and UNRATED_OTHER not in raw

    out = tmp_path / "sft-run"
    result = runner.invoke(
        cli,
        [
            "train", "sft",
            "--set", f"output_dir={out}",
            "--set", f"model.base={tiny_llama_dir}",
            "--set", f"data.dataset={sft_file}",
            "--set", "max_steps=2",
            "--set", "batch_size=2",
            "--set", "seq_len=128",
            "--set", "eval_every=0",
            "--set", "optim.warmup_steps=0",
            "--set", "device=cpu",
            "--set", "tensorboard=false",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    record = json.loads((out / "training.json").read_text())
    assert record["task"] == "sft"
    assert record["data_sha256"] == hashlib.sha256(sft_file.read_bytes()).hexdigest()
    assert record["final_metrics"]["step"] == 2
    assert math.isfinite(record["final_metrics"]["loss"])
    losses = [e["loss"] for e in read_log(out) if "loss" in e]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
