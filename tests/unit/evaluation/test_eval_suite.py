"""Suite files: validation errors name the task and field; the hash covers the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmeco.errors import ConfigError
from llmeco.evaluation.builtin_tasks import PerplexityConfig, register_builtin_retrievers
from llmeco.evaluation.context import EvalContext, RetrieverFactory, TaskResult
from llmeco.evaluation.report import compare_runs, metric_directions
from llmeco.evaluation.suite import load_suite
from llmeco.evaluation.tasks import TASK_TYPES, TaskConfig, TaskType, register_task, task_types

SHIPPED = Path(__file__).resolve().parents[3] / "examples" / "eval" / "suite.yaml"


def _suite(tmp_path: Path, body: str) -> Path:
    (tmp_path / "d.jsonl").write_text('{"text": "hello"}\n')
    path = tmp_path / "suite.yaml"
    path.write_text(body)
    return path


def test_shipped_suite_loads_with_every_data_file() -> None:
    suite = load_suite(SHIPPED)
    assert suite.name == "shipped"
    assert [t.type for t in suite.tasks] == [
        "perplexity",
        "multiple_choice",
        "classification",
        "classification",
        "generation",
    ]
    mc = next(t for t in suite.tasks if t.type == "multiple_choice")
    assert sum(1 for line in mc.data.read_text().splitlines() if line.strip()) >= 20


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: s\ntasks:\n  - {name: a, type: nope, data: d.jsonl}\n", "unknown type 'nope'"),
        ("name: s\ntasks:\n  - {name: a, type: perplexity, data: d.jsonl, strid: 3}\n", "strid"),
        (
            "name: s\ntasks:\n  - {name: a, type: perplexity, data: d.jsonl}\n"
            "  - {name: a, type: perplexity, data: d.jsonl}\n",
            "two tasks are named 'a'",
        ),
        ("name: s\ntasks:\n  - {name: a, type: perplexity, data: missing.jsonl}\n", "missing"),
        ("name: s\ntasks:\n  - {name: a.b, type: perplexity, data: d.jsonl}\n", "task name"),
        (
            "name: s\ntasks:\n  - {name: a, type: perplexity, data: d.jsonl, max_length: 8, "
            "stride: 8}\n",
            "stride",
        ),
        (
            "name: s\ntasks:\n  - {name: a, type: classification, data: d.jsonl, method: head}\n",
            "classifier",
        ),
        ("name: s\ntasks: []\n", "non-empty 'tasks'"),
    ],
)
def test_bad_suites_fail_with_a_message_naming_the_problem(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_suite(_suite(tmp_path, body))


def test_suite_hash_changes_when_the_data_changes(tmp_path: Path) -> None:
    path = _suite(tmp_path, "name: s\ntasks:\n  - {name: a, type: perplexity, data: d.jsonl}\n")
    first = load_suite(path).sha256
    (tmp_path / "d.jsonl").write_text('{"text": "hello!"}\n')
    assert load_suite(path).sha256 != first


def test_compare_runs_reports_deltas_in_the_metric_direction() -> None:
    a = {"tasks": {"ppl": {"metrics": {"perplexity": 10.0}}, "mc": {"metrics": {"acc": 0.5}}}}
    b = {"tasks": {"ppl": {"metrics": {"perplexity": 8.0}}, "mc": {"metrics": {"acc": 0.25}}}}
    rows = {(r.task, r.metric): r for r in compare_runs(a, b)}
    assert rows[("ppl", "perplexity")].delta == -2.0 and rows[("ppl", "perplexity")].better
    assert rows[("mc", "acc")].delta == -0.25 and rows[("mc", "acc")].better is False


def test_metric_directions_say_which_way_each_metric_improves() -> None:
    run = {
        "tasks": {
            "ppl": {"metrics": {"perplexity": 10.0, "bits_per_byte": 1.2, "tokens": 90}},
            "mc": {"metrics": {"acc": 0.5, "note": "text", "flag": True}},
        }
    }
    assert metric_directions(run) == {
        "ppl.perplexity": "lower",
        "ppl.bits_per_byte": "lower",
        "ppl.tokens": "higher",
        "mc.acc": "higher",
    }
    assert metric_directions({"tasks": {"t": {}}}) == {}


def test_builtin_tasks_come_from_the_hook_and_register_task_overrides() -> None:
    types = task_types()
    assert types["perplexity"].config is PerplexityConfig  # registered through the hook
    assert {"perplexity", "multiple_choice", "classification", "generation", "retrieval"} <= set(
        types
    )

    class Mine(TaskConfig):
        pass

    async def run_mine(config: Mine, ctx: EvalContext) -> TaskResult:
        return TaskResult(0, {})

    register_task("mine_only_here", Mine, run_mine)
    try:
        assert task_types()["mine_only_here"] == TaskType(Mine, run_mine)
    finally:
        del TASK_TYPES["mine_only_here"]
    retrievers: dict[str, RetrieverFactory] = {}
    register_builtin_retrievers(retrievers)
    assert list(retrievers) == ["kb"]
