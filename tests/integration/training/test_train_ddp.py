"""Must-show 3: two CPU processes (torchrun, gloo) train like one process with the same
global batch — DDP, and FSDP (FSDP2 ``fully_shard`` runs on CPU with gloo too)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmeco.training.config import load_config
from llmeco.training.loop import train
from llmeco.training.runlog import read_log

pytestmark = pytest.mark.slow

STEPS = 20
#: Settings shared by the one- and two-process runs (the pretrain_yaml fixture's defaults too).
BASE = {
    "max_steps": STEPS,
    "eval_every": 10,
    "tensorboard": False,
    "optim": {"lr": 3e-3, "warmup_steps": 3},
    "seq_len": 64,
    "eval_batches": 2,
    "seed": 1,
}


def _losses(out: Path) -> dict[int, float]:
    return {int(e["step"]): float(e["loss"]) for e in read_log(out) if "loss" in e}


@pytest.fixture(scope="module")
def one_process(
    tmp_path_factory: pytest.TempPathFactory, corpus_dataset: Path, corpus_tokenizer: Path
) -> tuple[dict[int, float], float, Path]:
    """The reference: one process, batch 4 (per-step losses, final eval loss, output dir)."""
    import yaml

    root = tmp_path_factory.mktemp("one")
    data = {
        "output_dir": str(root / "run"),
        "model": {"tokenizer": str(corpus_tokenizer), "preset": "tiny"},
        "data": {"dataset": str(corpus_dataset)},
        **BASE,
        "batch_size": 4,
    }
    (root / "one.yaml").write_text(yaml.safe_dump(data))
    metrics = train(load_config(root / "one.yaml", "pretrain"), show_progress=False)
    return _losses(root / "run"), float(metrics["eval_loss"]), root / "run"


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(
    pretrain_yaml: Callable[..., Path],
    one_process: tuple[dict[int, float], float, Path],
    strategy: str,
) -> None:
    extra = {**BASE, "distributed": strategy}
    two_yaml = pretrain_yaml("two", batch_size=2, save_every=10, **extra)  # 2 × 2 = 4 global
    done = subprocess.run(
        [sys.executable, "-m", "llmeco", "train", "pretrain", "--config", str(two_yaml),
         "--nproc", "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    two_out = load_config(two_yaml, "pretrain").output_dir
    record = json.loads((two_out / "training.json").read_text())
    assert record["world_size"] == 2 and record["steps"] == STEPS

    a, b = one_process[0], _losses(two_out)
    assert a.keys() == b.keys() == set(range(1, STEPS + 1))
    assert abs(a[STEPS] - b[STEPS]) <= 1e-3, (a[STEPS], b[STEPS])
    assert max(abs(a[s] - b[s]) for s in a) <= 1e-3
    assert abs(one_process[1] - record["final_metrics"]["eval_loss"]) <= 1e-3
    # The saved model (gathered from shards under FSDP) is the same model.
    mine, ref = (
        load_file(str(two_out / "model.safetensors")),
        load_file(str(one_process[2] / "model.safetensors")),
    )
    assert mine.keys() == ref.keys()
    for name in ref:
        torch.testing.assert_close(mine[name], ref[name], atol=1e-4, rtol=1e-3)
