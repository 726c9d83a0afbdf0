"""Prompt logprobs over HTTP (echo + logprobs, prompt_logprobs) and predicted outputs.

A real server on the tiny random Llama; values are checked against Hugging Face's own
``log_softmax`` over the same weights.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from server_helpers import LiveServer
from transformers import AutoModelForCausalLM

from llmeco.engine.async_engine import AsyncEngine
from llmeco.server import build_app
from llmeco.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(
    tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        kv_block_size=8,
        max_num_batched_tokens=32,
        max_num_seqs=8,
        quantization="none",  # float32, compared with HF's float32 logprobs
    )
    engine = AsyncEngine.from_ref(str(tiny_llama_dir), settings)
    name = engine.model_info.name
    with LiveServer(build_app(settings, {name: engine})) as live:
        yield live.url, name
    asyncio.run(engine.shutdown(timeout=1))


def _hf_logprobs(model_dir: Path, ids: list[int]) -> list[float]:
    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        lp = torch.log_softmax(hf(torch.tensor([ids])).logits[0].float(), dim=-1)
    return [float(lp[i - 1, ids[i]]) for i in range(1, len(ids))]


def _post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=120)


PROMPT = [5, 77, 912, 40, 40, 3001, 17, 256, 999, 12, 7, 8, 650, 43, 21, 1000, 2047, 9] * 3


def test_echo_with_logprobs_scores_every_prompt_token(
    served: tuple[str, str], tiny_llama_dir: Path
) -> None:
    url, name = served
    expected = _hf_logprobs(tiny_llama_dir, PROMPT)  # 54 tokens: chunked prefill (32/step)
    for max_tokens in (0, 1):
        body = {"model": name, "prompt": [PROMPT, PROMPT[:10]], "echo": True, "logprobs": 2,
                "max_tokens": max_tokens, "temperature": 0}  # fmt: skip
        r = _post(url, "/v1/completions", body)
        assert r.status_code == 200, r.text
        choices = sorted(r.json()["choices"], key=lambda c: c["index"])
        lps = choices[0]["logprobs"]
        assert len(lps["tokens"]) == len(PROMPT) + max_tokens
        assert lps["token_logprobs"][0] is None and lps["top_logprobs"][0] is None
        got = lps["token_logprobs"][1 : len(PROMPT)]
        assert got == pytest.approx(expected, abs=1e-4)
        for value, top in zip(got, lps["top_logprobs"][1 : len(PROMPT)], strict=True):
            assert value <= max(top.values()) + 1e-6 and len(top) <= 3
        assert lps["text_offset"] == sorted(lps["text_offset"])
        short = choices[1]["logprobs"]["token_logprobs"]
        assert short[1:10] == pytest.approx(expected[:9], abs=1e-4)
        assert choices[0]["finish_reason"] == "length"
        assert r.json()["usage"]["completion_tokens"] == 2 * max_tokens


def test_prompt_logprobs_on_completions_and_chat(
    served: tuple[str, str], tiny_llama_dir: Path
) -> None:
    url, name = served
    expected = _hf_logprobs(tiny_llama_dir, PROMPT)
    body = {"model": name, "prompt": PROMPT, "prompt_logprobs": 1, "max_tokens": 2,
            "temperature": 0}  # fmt: skip
    r = _post(url, "/v1/completions", body)
    assert r.status_code == 200, r.text
    plp = r.json()["choices"][0]["prompt_logprobs"]
    assert plp[0] is None and len(plp) == len(PROMPT)
    for i, entry in enumerate(plp[1:], start=1):
        mine = entry[str(PROMPT[i])]
        assert mine["logprob"] == pytest.approx(expected[i - 1], abs=1e-4)
        assert mine["rank"] >= 1
        assert any(e["rank"] == 1 for e in entry.values())
    chat = {"model": name, "messages": [{"role": "user", "content": "hello there"}],
            "prompt_logprobs": 0, "max_tokens": 2}  # fmt: skip
    r = _post(url, "/v1/chat/completions", chat)
    assert r.status_code == 200, r.text
    plp = r.json()["prompt_logprobs"]
    assert plp[0] is None and len(plp) == r.json()["usage"]["prompt_tokens"]
    bad = {**body, "stream": True}
    assert _post(url, "/v1/completions", bad).status_code == 400
    assert _post(url, "/v1/completions", {**body, "prompt_logprobs": 21}).status_code == 400


def test_prediction_keeps_the_output(served: tuple[str, str]) -> None:
    url, name = served
    base = {"model": name, "prompt": "The cat sat on the", "max_tokens": 24,
            "temperature": 0, "ignore_eos": True}  # fmt: skip
    plain = _post(url, "/v1/completions", base).json()["choices"][0]["text"]
    for prediction in (plain, plain[: len(plain) // 2] + " something else entirely", ""):
        body = {**base, "prediction": {"type": "content", "content": prediction}}
        r = _post(url, "/v1/completions", body)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["text"] == plain
    chat = {"model": name, "messages": [{"role": "user", "content": "Repeat: a b c"}],
            "max_tokens": 16, "temperature": 0}  # fmt: skip
    plain = _post(url, "/v1/chat/completions", chat).json()["choices"][0]["message"]["content"]
    parts = {"type": "content", "content": [{"type": "text", "text": plain}]}
    r = _post(url, "/v1/chat/completions", {**chat, "prediction": parts})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == plain
    # The right prediction was drafted and accepted: /metrics reports it.
    metrics = httpx.get(url + "/metrics", timeout=30).text
    values = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("llmeco_spec_decode_")
    }
    assert values["llmeco_spec_decode_draft_tokens_total"] > 0
    assert values["llmeco_spec_decode_accepted_tokens_total"] > 0
    assert 0 < values["llmeco_spec_decode_acceptance_rate"] <= 1
