"""What a run records: JSONL lines, TensorBoard scalars and a loss-curve PNG at the end.

Only the main process writes. On ``--resume`` the lines (and TensorBoard events) after the
checkpoint's step are dropped first, so a resumed run's log reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LOG_FILE = "train_log.jsonl"
TENSORBOARD_DIR = "tensorboard"
PLOT_FILE = "loss_curve.png"


def read_log(output_dir: Path) -> list[dict[str, Any]]:
    """Every JSONL entry of a run, in order."""
    path = output_dir / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class RunLog:
    """JSONL + TensorBoard writer; inert on non-main processes (``enabled=False``)."""

    def __init__(
        self, output_dir: Path, *, enabled: bool, tensorboard: bool, resume_step: int | None
    ) -> None:
        self.output_dir = output_dir
        self.enabled = enabled
        self._tb: Any = None
        if not enabled:
            return
        path = output_dir / LOG_FILE
        if resume_step is not None:
            kept = [e for e in read_log(output_dir) if int(e.get("step", 0)) <= resume_step]
            path.write_text("".join(json.dumps(e) + "\n" for e in kept), encoding="utf-8")
        self._file = path.open("a", encoding="utf-8")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(str(output_dir / TENSORBOARD_DIR), purge_step=purge)

    def write(self, entry: dict[str, Any]) -> None:
        """Append one entry (must carry ``step``); numeric fields also go to TensorBoard."""
        if not self.enabled:
            return
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = int(entry["step"])
            for key, value in entry.items():
                if key != "step" and isinstance(value, int | float):
                    tag = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
                    self._tb.add_scalar(tag, value, step)

    def close(self) -> None:
        """Flush and close the files."""
        if not self.enabled:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def plot_losses(output_dir: Path, title: str) -> Path | None:
    """Draw train loss (and eval loss) against step into ``loss_curve.png``; None if no data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = read_log(output_dir)
    train = [(e["step"], e["loss"]) for e in entries if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in entries if "eval_loss" in e]
    if not train and not evals:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", linewidth=1)
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss", linewidth=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = output_dir / PLOT_FILE
    fig.savefig(path)
    plt.close(fig)
    return path
