"""`llmeco train` and `llmeco eval` on non-Llama families (they use transformers' models).

Tiny random Qwen2, Gemma 2 and Phi-3 models (2 layers, hidden 64, SmolLM2's tokenizer):
two SFT steps — full fine-tuning, and LoRA, whose default targets must reach Phi-3's fused
``qkv_proj`` / ``gate_up_proj`` — and the output directory serves in the native engine; the
perplexity and multiple-choice tasks of the eval suite run on the trained model.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from transformers import AutoConfig, AutoModelForCausalLM

from llmeco.data.pipeline import PrepareOptions, prepare_dataset
from llmeco.evaluation.runner import run_suite
from llmeco.evaluation.suite import load_suite
from llmeco.modeling.load import load_tokenizer
from llmeco.settings import Settings
from llmeco.training.config import load_config
from llmeco.training.loop import train

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
QUIET = Console(quiet=True)


@pytest.fixture(scope="module")
def chat_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/chat as a prepared dataset (20% validation)."""
    out = tmp_path_factory.mktemp("ds") / "ds"
    prepare_dataset([EXAMPLES / "chat"], out, PrepareOptions(validation_fraction=0.2))
    return out


def tiny(model_type: str, default_model_dir: Path, path: Path, **extra: Any) -> Path:
    """A seeded 2-layer random ``model_type`` with SmolLM2's tokenizer, saved in ``path``."""
    tokenizer = load_tokenizer(default_model_dir)
    torch.manual_seed(0)
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        **extra,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize(
    ("model_type", "lora"),
    [("qwen2", False), ("gemma2", False), ("gemma2", True), ("phi3", True)],
)
def test_sft_and_eval_run_on_the_family(
    model_type: str,
    lora: bool,
    default_model_dir: Path,
    chat_dataset: Path,
    tmp_path: Path,
) -> None:
    extra = {"sliding_window": 16} if model_type == "gemma2" else {}
    base = tiny(model_type, default_model_dir, tmp_path / "base", **extra)
    out = tmp_path / "sft"
    overrides = [
        f"output_dir={out}",
        f"model.base={base}",
        f"data.dataset={chat_dataset}",
        "max_steps=2",
        "batch_size=2",
        "seq_len=64",
        "eval_batches=1",
    ]
    if lora:
        overrides += ["lora.r=4"]
    home = tmp_path / "home"
    metrics = train(
        load_config(None, "sft", overrides),
        settings=Settings(home=home),
        console=QUIET,
        show_progress=False,
    )
    assert math.isfinite(metrics["eval_loss"]) and metrics["eval_loss"] > 0
    trained = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    assert trained.config.model_type == model_type
    if lora:  # merged adapters changed every default target, fused Phi-3 layers included
        before = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True)
        changed = {
            name.split(".")[-2]
            for name, p in trained.named_parameters()
            if not torch.equal(p, before.get_parameter(name))
        }
        want = {"qkv_proj", "gate_up_proj"} if model_type == "phi3" else {"q_proj", "up_proj"}
        assert want <= changed, changed

    suite = tmp_path / "suite.yaml"
    ppl_data = EXAMPLES / "eval" / "ppl.jsonl"
    suite.write_text(
        "name: families\ntasks:\n"
        f"  - {{name: ppl, type: perplexity, data: {ppl_data}, max_length: 512, limit: 3}}\n"
        f"  - {{name: mc, type: multiple_choice, data: {EXAMPLES / 'eval' / 'mc.jsonl'}, "
        "limit: 6}\n"
    )
    record, _ = asyncio.run(
        run_suite(
            load_suite(suite),
            str(out),
            Settings(home=home, quantization="none"),  # float32, as the reference below
            out_dir=tmp_path / "eval",
        )
    )
    # One window per text: perplexity is exp(mean NLL) of transformers' own loss.
    tokenizer = load_tokenizer(out)
    texts = [json.loads(line)["text"] for line in ppl_data.read_text().splitlines()[:3]]
    nll, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            nll += float(trained(ids, labels=ids).loss) * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    got = record["tasks"]["ppl"]["metrics"]["perplexity"]
    assert got == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert record["tasks"]["mc"]["metrics"]["acc"] in {i / 6 for i in range(7)}
