"""Promote and roll back: moving ``production`` with a gate, and undoing it in one step.

A **gate** is ``METRIC:SUITE:MAX_DROP`` — "metric METRIC (``task.metric`` as in the eval
results) on suite SUITE must not be worse than the current production's by more than
MAX_DROP" (absolute, or relative with a ``%`` suffix). "Worse" follows the metric's direction,
which the evaluation stores with each run it attaches (``EvalRecord.directions``; the
candidate's run decides); for runs attached without one the metric's name decides: lower is
better for perplexity/loss, higher for everything else. Both versions need an eval run of
that suite attached (``llmeco eval run --register``); the latest one of each counts. With no
current production there is nothing to compare with and every gate passes.

**Rollback** moves the alias back to the version it pointed to before the current one was
put there: the alias history is replayed as a stack (every move pushes its target, every
rollback pops), so rolling back twice goes back two promotions, not back and forth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmeco.errors import GateFailed, InvalidRequest, NotFound
from llmeco.registry.records import lower_is_better
from llmeco.registry.refs import check_name
from llmeco.registry.registry import AliasEvent, EvalRecord, Registry


@dataclass(frozen=True)
class Gate:
    """``metric`` on ``suite`` may drop by at most ``max_drop`` (a fraction when relative)."""

    metric: str
    suite: str
    max_drop: float
    relative: bool = False

    @classmethod
    def parse(cls, text: str) -> Gate:
        """Parse ``METRIC:SUITE:MAX_DROP`` (``MAX_DROP`` like ``0.02`` or ``2%``).

        Raises:
            InvalidRequest: not three parts, or MAX_DROP not a non-negative number.
        """
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise InvalidRequest(
                f"gate {text!r} must be METRIC:SUITE:MAX_DROP, e.g. 'mc.acc:shipped:0.02'"
            )
        metric, suite, drop = parts
        relative = drop.endswith("%")
        try:
            value = float(drop.rstrip("%"))
        except ValueError:
            value = -1.0
        if not math.isfinite(value) or value < 0:
            raise InvalidRequest(f"gate {text!r}: MAX_DROP must be a number >= 0 (or N%)")
        return cls(metric, suite, value / 100 if relative else value, relative)

    def __str__(self) -> str:
        drop = f"{self.max_drop * 100:g}%" if self.relative else f"{self.max_drop:g}"
        return f"{self.metric}:{self.suite}:{drop}"


@dataclass(frozen=True)
class GateResult:
    """How a candidate fared against production on one gate."""

    gate: Gate
    candidate: float
    current: float | None
    drop: float
    passed: bool

    def describe(self, name: str, candidate: int, current: int | None) -> str:
        """One line saying what was compared and the outcome."""
        if self.current is None:
            return f"{self.gate}: no production to compare with (candidate {self.candidate:.6g})"
        unit = "%" if self.gate.relative else ""
        drop = self.drop * 100 if self.gate.relative else self.drop
        limit = self.gate.max_drop * 100 if self.gate.relative else self.gate.max_drop
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{verdict}: {self.gate.metric} on suite {self.gate.suite}: {name}:{candidate} = "
            f"{self.candidate:.6g} vs production {name}:{current} = {self.current:.6g} "
            f"(worse by {drop:.4g}{unit}, allowed {limit:g}{unit})"
        )


def _metric(record: EvalRecord | None, gate: Gate, ref: str) -> float:
    if record is None:
        raise GateFailed(
            f"gate {gate}: {ref} has no eval run of suite {gate.suite!r}; run "
            f"`llmeco eval run --model {ref} --suite SUITE.yaml --register` first"
        )
    if gate.metric not in record.metrics:
        known = ", ".join(sorted(record.metrics))
        raise GateFailed(
            f"gate {gate}: metric {gate.metric!r} is not in {ref}'s run of suite "
            f"{gate.suite!r} (it has: {known})"
        )
    return record.metrics[gate.metric]


def check_gate(
    registry: Registry, name: str, gate: Gate, candidate: int, current: int | None
) -> GateResult:
    """Compare the latest eval runs of ``gate.suite`` on both versions.

    Raises:
        GateFailed: a version lacks the run or the metric (the message says which).
    """

    def latest(version: int) -> EvalRecord | None:
        runs = registry.evals(name, version, gate.suite)
        return runs[0] if runs else None

    candidate_run = latest(candidate)
    value = _metric(candidate_run, gate, f"{name}:{candidate}")
    if current is None:
        return GateResult(gate, value, None, 0.0, True)
    current_run = latest(current)
    base = _metric(current_run, gate, f"{name}:{current}")
    lower = lower_is_better(gate.metric, candidate_run, current_run)
    worse = value - base if lower else base - value
    drop = worse / abs(base) if gate.relative and base != 0 else worse
    return GateResult(gate, value, base, drop, drop <= gate.max_drop + 1e-12)


def _current(registry: Registry, name: str, alias: str) -> int | None:
    try:
        return registry.resolve(name, alias).version
    except NotFound:
        registry.get(name)  # an unknown model is still an error
        return None


def promote(
    registry: Registry,
    name: str,
    *,
    actor: str,
    source: str = "staging",
    target: str = "production",
    gates: tuple[Gate, ...] = (),
    note: str = "",
) -> tuple[AliasEvent, list[GateResult]]:
    """Point ``target`` at the version ``source`` points to, if every gate passes.

    Raises:
        NotFound: no such model, or ``source`` is not set.
        InvalidRequest: ``target`` already points at that version.
        GateFailed: a gate blocked it; the message names the metric and both values.
    """
    check_name(target, "alias")
    candidate = registry.resolve(name, source).version
    current = _current(registry, name, target)
    if current == candidate:
        raise InvalidRequest(f"{name}@{target} already is {name}:{candidate}")
    results = [check_gate(registry, name, gate, candidate, current) for gate in gates]
    failed = [r for r in results if not r.passed]
    if failed:
        lines = "; ".join(r.describe(name, candidate, current) for r in failed)
        raise GateFailed(f"promotion of {name}:{candidate} to {target} blocked: {lines}")
    event = registry.set_alias(name, candidate, target, actor=actor, action="promote", note=note)
    if event is None:  # moved there concurrently
        raise InvalidRequest(f"{name}@{target} already is {name}:{candidate}")
    return event, results


def rollback_target(history: list[AliasEvent]) -> tuple[int | None, int | None]:
    """(current, previous) version of one alias from its history, replayed as a stack."""
    stack: list[int] = []
    for event in history:
        if event.action == "rollback":
            if stack:
                stack.pop()
        elif event.to_version is None:
            stack.clear()
        else:
            stack.append(event.to_version)
    current = stack[-1] if stack else None
    previous = stack[-2] if len(stack) >= 2 else None
    return current, previous


def rollback(
    registry: Registry, name: str, *, actor: str, alias: str = "production", note: str = ""
) -> AliasEvent:
    """Move ``alias`` back to the version it pointed to before its current one.

    Raises:
        NotFound: no such model. InvalidRequest: the alias has no earlier version.
    """
    stacked, previous = rollback_target(registry.history(name, alias))
    now = _current(registry, name, alias)
    if previous is None or stacked != now:
        raise InvalidRequest(
            f"{name}@{alias} has no previous version to roll back to "
            f"(history: `llmeco models history {name} --alias {alias}`)"
        )
    event = registry.set_alias(name, previous, alias, actor=actor, action="rollback", note=note)
    if event is None:
        raise InvalidRequest(f"{name}@{alias} already is {name}:{previous}")
    return event
