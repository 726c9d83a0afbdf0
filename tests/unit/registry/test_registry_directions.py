"""Metric directions: stored with each attached eval run, read by gates and diffs; runs
attached without them (all runs attached before directions were stored) go by the name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reg_helpers import eval_results, make_model_dir
from sqlalchemy import select

from llmeco.errors import GateFailed, InvalidRequest
from llmeco.registry import Registry
from llmeco.registry import tables as t
from llmeco.registry.compare import MetricDelta, diff_versions
from llmeco.registry.lifecycle import Gate, promote
from llmeco.registry.records import default_lower_is_better


def _two_versions(registry: Registry, tmp_path: Path) -> None:
    for i in (1, 2):
        registry.register(make_model_dir(tmp_path / f"m{i}", weights=b"w%d" % i), "sup", actor="t")


def test_directions_are_stored_with_the_run_and_read_back(
    registry: Registry, tmp_path: Path
) -> None:
    _two_versions(registry, tmp_path)
    results = eval_results("s", {"judge": {"errors": 3.0, "acc": 0.5}})
    attached = registry.attach_eval(
        "sup",
        1,
        results,
        directions={"judge.errors": "lower", "judge.acc": "higher", "other.x": "lower"},
    )
    assert attached.directions == {"judge.errors": "lower", "judge.acc": "higher"}
    (read,) = registry.evals("sup", 1)
    assert read.metrics == {"judge.errors": 3.0, "judge.acc": 0.5}
    assert read.directions == attached.directions
    assert read.lower_is_better("judge.errors") and not read.lower_is_better("judge.acc")
    with pytest.raises(InvalidRequest, match="'sideways'"):
        registry.attach_eval("sup", 1, results, directions={"judge.acc": "sideways"})


def test_a_run_attached_without_directions_is_stored_and_read_as_before(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    reg = sqlite_registry
    _two_versions(reg, tmp_path)
    reg.attach_eval("sup", 1, eval_results("s", {"ppl": {"perplexity": 9.0}, "mc": {"acc": 1}}))
    with reg.store.session() as s:
        stored = s.execute(select(t.EvalRow.metrics)).scalar_one()
    assert json.loads(stored) == {"ppl.perplexity": 9.0, "mc.acc": 1.0}  # the original form
    (read,) = reg.evals("sup", 1)
    assert read.directions == {}
    assert read.lower_is_better("ppl.perplexity") and not read.lower_is_better("mc.acc")
    assert default_lower_is_better("loss") and not default_lower_is_better("judge.errors")


def test_gates_follow_the_stored_direction(registry: Registry, tmp_path: Path) -> None:
    """``judge.errors`` is not a name the registry knows; the evaluation said lower is better."""
    _two_versions(registry, tmp_path)
    lower = {"judge.errors": "lower"}
    registry.attach_eval("sup", 1, eval_results("s", {"judge": {"errors": 5.0}}), directions=lower)
    registry.attach_eval("sup", 2, eval_results("s", {"judge": {"errors": 3.0}}), directions=lower)
    registry.set_alias("sup", 2, "production", actor="t")
    registry.set_alias("sup", 1, "staging", actor="t")
    gate = (Gate.parse("judge.errors:s:0"),)
    with pytest.raises(GateFailed, match=r"worse by 2"):
        promote(registry, "sup", actor="t", gates=gate)
    registry.set_alias("sup", 2, "staging", actor="t")
    registry.set_alias("sup", 1, "production", actor="t")
    event, results = promote(registry, "sup", actor="t", gates=gate)
    assert event.to_version == 2 and results[0].drop == -2.0


def test_diff_follows_the_stored_direction(sqlite_registry: Registry, tmp_path: Path) -> None:
    reg = sqlite_registry
    _two_versions(reg, tmp_path)
    reg.attach_eval("sup", 1, eval_results("s", {"judge": {"errors": 5.0}, "ppl": {"loss": 2.0}}))
    reg.attach_eval(
        "sup",
        2,
        eval_results("s", {"judge": {"errors": 3.0}, "ppl": {"loss": 1.0}}),
        directions={"judge.errors": "lower"},
    )
    d = diff_versions(reg, reg.get("sup", 1), reg.get("sup", 2))
    metrics = {m.metric: m for m in d.metrics}
    assert metrics["judge.errors"].improved and metrics["judge.errors"].lower_is_better
    assert metrics["ppl.loss"].improved  # no direction stored: the name decides
    # a delta built without a direction goes by the name, as it always did
    assert MetricDelta("s", "ppl.perplexity", 2.0, 1.0).improved
    assert MetricDelta("s", "judge.errors", 2.0, 1.0).improved is False
