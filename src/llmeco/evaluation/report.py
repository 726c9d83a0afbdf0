"""Writing a run (JSON, Markdown, PNG chart, predictions), comparing two runs, and the
direction of each of a run's metrics (what the registry stores with an attached run)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmeco.errors import ConfigError, NotFound
from llmeco.evaluation.metrics import lower_is_better

RESULTS = "results.json"
REPORT = "report.md"
CHART = "chart.png"
#: Metrics on a 0–100 scale (sacrebleu's); the chart shows them divided by 100.
PERCENT_METRICS = frozenset({"bleu", "chrf"})


def write_run(
    out: Path, record: dict[str, Any], predictions: dict[str, list[dict[str, Any]]]
) -> None:
    """Write ``results.json``, ``report.md``, ``chart.png`` and ``predictions/*.jsonl``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).write_text(json.dumps(record, indent=2, allow_nan=True) + "\n")
    (out / REPORT).write_text(markdown(record))
    pred_dir = out / "predictions"
    pred_dir.mkdir(exist_ok=True)
    for task, items in predictions.items():
        with (pred_dir / f"{task}.jsonl").open("w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
    chart(record, out / CHART)


def load_run(path: Path) -> dict[str, Any]:
    """A run's ``results.json`` (``path`` is the run directory or the file itself).

    Raises:
        NotFound: no results there. ConfigError: the file is not a run's results.
    """
    file = path / RESULTS if path.is_dir() else path
    if not file.is_file():
        raise NotFound(f"no evaluation run at {path} (expected {file})")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "tasks" not in data or "run_id" not in data:
        raise ConfigError(f"{file} is not the results.json of an evaluation run")
    return data


def format_value(value: Any) -> str:
    """A metric value for tables: 4 decimals, n/a for NaN."""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def markdown(record: dict[str, Any]) -> str:
    """The human-readable report of a run."""
    model, suite = record["model"], record["suite"]
    lines = [
        f"# Evaluation: {suite['name']} on {model['ref']}",
        "",
        f"- run: `{record['run_id']}` ({record['created_at']}, {record['duration_s']} s)",
        f"- model: `{model['ref']}` → {model['origin']}",
        f"- suite: `{suite['path']}` (sha256 `{suite['sha256'][:16]}…`)",
        f"- llmeco {record['llmeco_version']}; settings {json.dumps(record['settings'])}",
        "",
        "| task | type | n | metric | value |",
        "|---|---|---|---|---|",
    ]
    for name, task in record["tasks"].items():
        for i, (metric, value) in enumerate(task["metrics"].items()):
            head = f"| {name} | {task['type']} | {task['n']} " if i == 0 else "| | | "
            lines.append(f"{head}| {metric} | {format_value(value)} |")
    for name, task in record["tasks"].items():
        matrix = task.get("details", {}).get("confusion_matrix")
        if matrix:
            labels = task["details"]["labels"]
            lines += ["", f"## {name}: confusion matrix (rows gold, columns predicted)", ""]
            lines.append("| gold \\ pred | " + " | ".join(labels) + " |")
            lines.append("|---" * (len(labels) + 1) + "|")
            for label, row in zip(labels, matrix, strict=False):
                lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", f"![metrics]({CHART})", ""]
    return "\n".join(lines)


def chart(record: dict[str, Any], path: Path) -> None:
    """A bar chart per task of its 0–1 metrics (BLEU/chrF shown /100); perplexity tasks show
    bits per byte. Rendered with matplotlib's Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(record["tasks"].items())
    bars = [_chart_bars(task) for _, task in tasks]
    heights = [1.0 + 0.28 * max(1, len(b)) for b in bars]  # inches: title/axis + one per bar
    fig, axes = plt.subplots(
        len(tasks),
        1,
        figsize=(7, 0.6 + sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, (name, task), shown in zip(axes[:, 0], tasks, bars, strict=True):
        labels = [label for label, _ in shown]
        values = [value for _, value in shown]
        ax.barh(labels, values, color="#4c72b0")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
        title = f"{name} ({task['type']}, n={task['n']})"
        if task["type"] == "perplexity":
            title += f" — perplexity {task['metrics'].get('perplexity', float('nan')):.3f}"
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_xlim(0, max([1.0, *values]) * 1.15)
        ax.tick_params(labelsize=8)
        ax.invert_yaxis()
    fig.suptitle(f"{record['suite']['name']} on {record['model']['ref']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _chart_bars(task: dict[str, Any]) -> list[tuple[str, float]]:
    """(label, value) bars of one task: 0–1 metrics, BLEU/chrF /100, bits per byte."""
    bars: list[tuple[str, float]] = []
    for metric, value in task["metrics"].items():
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            continue
        if metric in PERCENT_METRICS:
            bars.append((f"{metric}/100", value / 100))
        elif task["type"] == "perplexity":
            if metric == "bits_per_byte":
                bars.append((metric, value))
        elif 0.0 <= value <= 1.0:
            bars.append((metric, value))
    return bars


@dataclass(frozen=True)
class CompareRow:
    """One metric of one task in two runs."""

    task: str
    metric: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        """``b - a`` when both runs have the metric."""
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    @property
    def better(self) -> bool | None:
        """Whether run B is better on this metric (None: equal or not comparable)."""
        d = self.delta
        if d is None or d == 0 or math.isnan(d):
            return None
        return d < 0 if lower_is_better(self.metric) else d > 0


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> list[CompareRow]:
    """Every (task, metric) of either run, side by side, in run A's order then B's extras."""
    rows: list[CompareRow] = []
    names = list(a["tasks"]) + [t for t in b["tasks"] if t not in a["tasks"]]
    for task in names:
        ma = a["tasks"].get(task, {}).get("metrics", {})
        mb = b["tasks"].get(task, {}).get("metrics", {})
        for metric in list(ma) + [m for m in mb if m not in ma]:
            rows.append(CompareRow(task, metric, _num(ma.get(metric)), _num(mb.get(metric))))
    return rows


def metric_directions(record: dict[str, Any]) -> dict[str, str]:
    """``task.metric`` → ``"lower"`` or ``"higher"``: which way each numeric metric of a run
    improves. Passed to :meth:`llmeco.registry.Registry.attach_eval` so that promotion gates
    and version diffs compare in the direction the evaluation knows, not by guessing.
    Whatever is not a metric value is skipped: the registry validates the record itself."""
    out: dict[str, str] = {}
    tasks = record.get("tasks")
    for task_name, task in (tasks if isinstance(tasks, dict) else {}).items():
        metrics = task.get("metrics") if isinstance(task, dict) else None
        for metric, value in (metrics if isinstance(metrics, dict) else {}).items():
            if _num(value) is not None:
                out[f"{task_name}.{metric}"] = "lower" if lower_is_better(metric) else "higher"
    return out


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
