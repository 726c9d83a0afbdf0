"""``llmeco models diff``: what changed between two versions — config, lineage, files, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmeco.registry.records import EvalRecord, default_lower_is_better, lower_is_better
from llmeco.registry.registry import Registry, Version

_MISSING = "<absent>"


@dataclass(frozen=True)
class MetricDelta:
    """One metric of one suite on both versions (None where a version has no run).

    ``lower_is_better`` is the metric's direction as the eval runs stored it; None means
    unknown, and the metric's name decides (perplexity, loss … improve downwards).
    """

    suite: str
    metric: str
    a: float | None
    b: float | None
    lower_is_better: bool | None = None

    @property
    def delta(self) -> float | None:
        """``b - a`` when both exist."""
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def improved(self) -> bool | None:
        """Whether b is better than a (in the metric's direction); None if unknown."""
        d = self.delta
        if d is None or d == 0:
            return None
        lower = self.lower_is_better
        if lower is None:
            lower = default_lower_is_better(self.metric)
        return d < 0 if lower else d > 0


@dataclass
class VersionDiff:
    """Differences between version ``a`` and version ``b`` of models (usually the same one)."""

    a: str
    b: str
    config: list[tuple[str, Any, Any]] = field(default_factory=list)
    lineage: list[tuple[str, Any, Any]] = field(default_factory=list)
    files_added: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    metrics: list[MetricDelta] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "a": self.a,
            "b": self.b,
            "config": [{"key": k, "a": x, "b": y} for k, x, y in self.config],
            "lineage": [{"key": k, "a": x, "b": y} for k, x, y in self.lineage],
            "files": {
                "added": self.files_added,
                "removed": self.files_removed,
                "changed": self.files_changed,
            },
            "metrics": [
                {"suite": m.suite, "metric": m.metric, "a": m.a, "b": m.b, "delta": m.delta}
                for m in self.metrics
            ],
        }


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (lists and scalars are leaves)."""
    if not isinstance(value, dict):
        return {prefix: value} if prefix else {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict) and item:
            out.update(flatten(item, path))
        else:
            out[path] = item
    return out


def dict_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[tuple[str, Any, Any]]:
    """``(dotted key, a's value, b's value)`` for every key whose value differs."""
    fa, fb = flatten(a or {}), flatten(b or {})
    return [
        (key, fa.get(key, _MISSING), fb.get(key, _MISSING))
        for key in sorted(set(fa) | set(fb))
        if fa.get(key, _MISSING) != fb.get(key, _MISSING)
    ]


def _latest_runs(registry: Registry, v: Version) -> dict[str, EvalRecord]:
    """suite → the newest run of each suite attached to ``v``."""
    out: dict[str, EvalRecord] = {}
    for record in registry.evals(v.name, v.version):  # newest first
        out.setdefault(record.suite, record)
    return out


def diff_versions(registry: Registry, a: Version, b: Version) -> VersionDiff:
    """Config, lineage, file and metric differences from ``a`` to ``b``."""
    out = VersionDiff(a.ref, b.ref, dict_changes(a.config, b.config))
    out.lineage = dict_changes(a.lineage, b.lineage)
    fa = {f.path: f.sha256 for f in a.files}
    fb = {f.path: f.sha256 for f in b.files}
    out.files_added = sorted(set(fb) - set(fa))
    out.files_removed = sorted(set(fa) - set(fb))
    out.files_changed = sorted(p for p in set(fa) & set(fb) if fa[p] != fb[p])
    ra, rb = _latest_runs(registry, a), _latest_runs(registry, b)
    for suite in sorted(set(ra) | set(rb)):
        run_a, run_b = ra.get(suite), rb.get(suite)
        sa = run_a.metrics if run_a is not None else {}
        sb = run_b.metrics if run_b is not None else {}
        for metric in sorted(set(sa) | set(sb)):
            lower = lower_is_better(metric, run_b, run_a)
            out.metrics.append(MetricDelta(suite, metric, sa.get(metric), sb.get(metric), lower))
    return out
