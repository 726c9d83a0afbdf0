"""Must-show 2: kill a real training process mid-run, ``--resume`` it, and get the loss
trajectory (and weights) of the uninterrupted run with the same seed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from llmeco.cli.main import app
from llmeco.training.config import load_config
from llmeco.training.loop import train
from llmeco.training.runlog import read_log

pytestmark = pytest.mark.slow


def _by_step(out: Path, key: str) -> dict[int, float]:
    return {int(e["step"]): float(e[key]) for e in read_log(out) if key in e}


def test_killed_run_resumes_to_the_same_trajectory(pretrain_yaml: Callable[..., Path]) -> None:
    steps = 40
    extra = {"max_steps": steps, "save_every": 5, "eval_every": 10, "log_every": 1}
    straight_yaml = pretrain_yaml("straight", **extra)
    train(load_config(straight_yaml, "pretrain"), show_progress=False)

    killed_yaml = pretrain_yaml("killed", **extra)
    out = load_config(killed_yaml, "pretrain").output_dir
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmeco", "train", "pretrain", "--config", str(killed_yaml)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LLMECO_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "step-000010").is_dir():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "config.json").exists(), "killed too late: the run had finished"
    logged = max(_by_step(out, "loss"))
    assert logged < steps

    result = CliRunner().invoke(
        app, ["train", "pretrain", "--config", str(killed_yaml), "--resume"]
    )
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output

    a_out = load_config(straight_yaml, "pretrain").output_dir
    for key in ("loss", "eval_loss"):
        a, b = _by_step(a_out, key), _by_step(out, key)
        assert a.keys() == b.keys() and len(a) > 1, key
        worst = max(abs(a[s] - b[s]) for s in a)
        assert worst <= 1e-4, f"{key} differs by {worst} after resume"
    wa = load_file(str(a_out / "model.safetensors"))
    wb = load_file(str(out / "model.safetensors"))
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=1e-5, rtol=1e-4)
    assert (out / "loss_curve.png").is_file() and (out / "tensorboard").is_dir()
