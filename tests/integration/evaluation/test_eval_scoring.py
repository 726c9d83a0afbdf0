"""Must-show 1 (scoring): perplexity equals a direct Hugging Face computation to 1e-4
relative, and multiple-choice accuracy on the 24-item shipped set equals a hand-written
log-likelihood reference — on the tiny random Llama. Batch size never changes a result."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from llmeco.evaluation.runner import run_suite
from llmeco.evaluation.suite import load_suite
from llmeco.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "eval"
WINDOW, STRIDE = 40, 16


@pytest.fixture(scope="module")
def hf(tiny_llama_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_llama_dir)


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    texts = [json.loads(line)["text"] for line in (EXAMPLES / "ppl.jsonl").read_text().splitlines()]
    texts.append("Short one.")
    (root / "ppl.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (root / "mc.jsonl").write_text((EXAMPLES / "mc.jsonl").read_text())
    (root / "suite.yaml").write_text(
        "name: scoring\ntasks:\n"
        "  - {name: ppl, type: perplexity, data: ppl.jsonl, "
        f"max_length: {WINDOW}, stride: {STRIDE}}}\n"
        "  - {name: mc, type: multiple_choice, data: mc.jsonl}\n"
    )
    return root / "suite.yaml"


def _run(
    suite: Path, model: Path, home: Path, batch_tokens: int, limit: int | None
) -> dict[str, Any]:
    import asyncio

    record, out = asyncio.run(
        run_suite(
            load_suite(suite),
            str(model),
            Settings(home=home),
            out_dir=home / f"run-{batch_tokens}",
            batch_tokens=batch_tokens,
        )
    )
    preds = {
        task: [
            json.loads(line)
            for line in (out / "predictions" / f"{task}.jsonl").read_text().splitlines()
        ]
        for task in record["tasks"]
    }
    return {"record": record, "preds": preds}


@pytest.fixture(scope="module")
def runs(
    suite_path: Path, tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[int, Any]:
    home = tmp_path_factory.mktemp("home")
    # batch_tokens=1: every sequence alone; 4096: up to ~50 sequences per forward pass
    return {
        4096: _run(suite_path, tiny_llama_dir, home, 4096, None),
        1: _run(suite_path, tiny_llama_dir, home, 1, 8),
    }


@torch.no_grad()
def _hf_nll(model: Any, tokenizer: Any, text: str) -> tuple[float, int]:
    """Summed NLL and scored tokens of one text by the Hugging Face "perplexity of
    fixed-length models" recipe (windows of WINDOW tokens every STRIDE, loss × targets)."""
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    seq_len = ids.size(1)
    nll_sum, n_tokens, prev_end = 0.0, 0, 0
    for begin in range(0, seq_len, STRIDE):
        end = min(begin + WINDOW, seq_len)
        trg_len = end - prev_end
        input_ids = ids[:, begin:end]
        target = input_ids.clone()
        target[:, :-trg_len] = -100
        if input_ids.size(1) > 1:
            loss = model(input_ids, labels=target).loss
            valid = int((target[:, 1:] != -100).sum())
            nll_sum += float(loss) * valid
            n_tokens += valid
        prev_end = end
        if end == seq_len:
            break
    return nll_sum, n_tokens


def test_perplexity_equals_a_direct_hugging_face_computation(
    runs: dict[int, Any], hf: tuple[Any, Any], suite_path: Path
) -> None:
    model, tokenizer = hf
    lines = (suite_path.parent / "ppl.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    assert len(tokenizer(texts[0])["input_ids"]) > 2 * WINDOW  # really uses several windows
    direct = [_hf_nll(model, tokenizer, text) for text in texts]
    want = math.exp(sum(n for n, _ in direct) / sum(t for _, t in direct))
    got = runs[4096]["record"]["tasks"]["ppl"]["metrics"]["perplexity"]
    assert got == pytest.approx(want, rel=1e-4)
    for (nll, tokens), pred in zip(direct, runs[4096]["preds"]["ppl"], strict=True):
        assert pred["tokens"] == tokens
        assert pred["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-4)


@torch.no_grad()
def test_multiple_choice_accuracy_equals_a_hand_written_loglikelihood_reference(
    runs: dict[int, Any], hf: tuple[Any, Any], suite_path: Path
) -> None:
    model, tokenizer = hf
    items = [json.loads(line) for line in (suite_path.parent / "mc.jsonl").read_text().splitlines()]
    assert len(items) >= 20
    correct = correct_norm = 0
    for item, pred in zip(items, runs[4096]["preds"]["mc"], strict=True):
        context = f"Question: {item['question']}\nAnswer:"
        ctx_ids = tokenizer(context)["input_ids"]
        scores, norm = [], []
        for choice in item["choices"]:
            whole = tokenizer(context + " " + choice)["input_ids"]
            logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), dim=-1)
            ll = sum(float(logp[i - 1, whole[i]]) for i in range(len(ctx_ids), len(whole)))
            scores.append(ll)
            norm.append(ll / len(choice.encode("utf-8")))
        assert pred["logliks"] == pytest.approx(scores, rel=1e-4, abs=1e-4)
        correct += int(max(range(len(scores)), key=scores.__getitem__) == item["answer"])
        correct_norm += int(max(range(len(norm)), key=norm.__getitem__) == item["answer"])
    metrics = runs[4096]["record"]["tasks"]["mc"]["metrics"]
    assert metrics["acc"] == correct / len(items)
    assert metrics["acc_norm"] == correct_norm / len(items)


def test_batch_size_does_not_change_results(
    runs: dict[int, Any], hf: tuple[Any, Any], suite_path: Path
) -> None:
    """The scorer alone (batch_tokens=1: one sequence per forward pass) gives the run's
    numbers, which were computed in batches of up to ~50 right-padded sequences."""
    from llmeco.evaluation.scoring import Scorer

    model, tokenizer = hf
    scorer = Scorer(model, tokenizer, torch.device("cpu"), max_length=512, batch_tokens=1)
    items = [json.loads(line) for line in (suite_path.parent / "mc.jsonl").read_text().splitlines()]
    for item, pred in list(zip(items, runs[4096]["preds"]["mc"], strict=True))[:5]:
        context = f"Question: {item['question']}\nAnswer:"
        requests = [scorer.encode_pair(context, " " + c) for c in item["choices"]]
        alone = [r.logprob for r in scorer.loglikelihood(requests)]
        assert alone == pytest.approx(pred["logliks"], rel=1e-5, abs=1e-5)
    text = json.loads((suite_path.parent / "ppl.jsonl").read_text().splitlines()[0])["text"]
    windows = scorer.rolling_requests(scorer.encode(text), WINDOW, STRIDE)
    alone_nll = -sum(r.logprob for r in scorer.loglikelihood(windows))
    assert alone_nll == pytest.approx(runs[4096]["preds"]["ppl"][0]["nll"], rel=1e-6)
