"""What ``llmeco top`` shows, computed from two scrapes of ``/metrics`` (and the admin API's
usage): request and token rates over the interval between them, engine gauges, and latency
percentiles from the histogram buckets that filled in the interval.

Pure functions over the exposition text, so the view is tested without a terminal.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

#: Routes left out of the request rate: the scrapes and probes themselves.
_QUIET_ROUTES = frozenset({"/metrics", "/health", "/ready"})

Labels = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    """One ``/metrics`` answer: every sample by name and labels, and when it was taken."""

    at: float
    samples: dict[str, dict[Labels, float]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, at: float) -> Scrape:
        """Parse Prometheus exposition text taken at ``at`` (monotonic seconds)."""
        out: dict[str, dict[Labels, float]] = defaultdict(dict)
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[s.name][tuple(sorted(s.labels.items()))] = float(s.value)
        return cls(at, dict(out))

    def series(self, name: str) -> dict[Labels, float]:
        """Samples of ``name`` by their labels (empty if absent)."""
        return self.samples.get(name, {})


def _sum_by(
    series: Mapping[Labels, float], label: str, skip: Iterable[str] = ()
) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    skipped = set(skip)
    for labels, value in series.items():
        d = dict(labels)
        if d.get("route") in skipped:
            continue
        out[d.get(label, "")] += value
    return dict(out)


def _rate(
    now: Mapping[str, float], before: Mapping[str, float], seconds: float
) -> dict[str, float]:
    """Per-second increase of each counter (a reset counts from zero)."""
    out = {}
    for key, value in now.items():
        prev = before.get(key, 0.0)
        out[key] = (value - prev if value >= prev else value) / seconds if seconds > 0 else 0.0
    return out


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of a cumulative histogram (upper bound → count), interpolated
    linearly inside the bucket as PromQL's ``histogram_quantile`` does; None if empty."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = upper, count
    return lower


def _buckets_by_model(scrape: Scrape, name: str) -> dict[str, dict[float, float]]:
    out: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for labels, value in scrape.series(f"{name}_bucket").items():
        d = dict(labels)
        out[d.get("model", "")][float(d["le"])] += value
    return {m: dict(b) for m, b in out.items()}


def _window(now: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    """Bucket counts that arrived between two scrapes (cumulative when nothing did)."""
    delta = {le: now[le] - before.get(le, 0.0) for le in now}
    return delta if max(delta.values(), default=0.0) > 0 else now


@dataclass
class ModelRow:
    """One served model's line of the view."""

    model: str
    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    tokens_in_per_s: float = 0.0
    tokens_out_per_s: float = 0.0
    ttft_p50: float | None = None
    ttft_p95: float | None = None
    itl_p50: float | None = None
    itl_p95: float | None = None


@dataclass
class KeyRow:
    """One API key's usage today (from ``/admin/usage``)."""

    key_id: str
    name: str
    total_tokens: int
    requests: int
    remaining_tokens: int | None


@dataclass
class TopView:
    """Everything one frame of ``llmeco top`` shows."""

    requests_per_s: float
    errors_per_s: float
    rejected_per_s: float
    ready: bool | None
    rss_bytes: float | None
    models: list[ModelRow]
    keys: list[KeyRow] | None
    keys_note: str = ""


def build_view(
    now: Scrape, before: Scrape | None, usage: list[KeyRow] | None, note: str = ""
) -> TopView:
    """The frame for ``now`` (rates since ``before``; since the server started when None)."""
    base = before or Scrape(now.at - 1.0)
    dt = max(1e-6, now.at - base.at) if before is not None else 0.0
    by_status_now = _sum_by(now.series("llmeco_requests_total"), "status", _QUIET_ROUTES)
    by_status_before = _sum_by(base.series("llmeco_requests_total"), "status", _QUIET_ROUTES)
    rates = _rate(by_status_now, by_status_before, dt)
    models: dict[str, ModelRow] = {}

    def row(model: str) -> ModelRow:
        return models.setdefault(model, ModelRow(model))

    for labels, value in now.series("llmeco_num_requests_running").items():
        row(dict(labels)["model"]).running = value
    for labels, value in now.series("llmeco_num_requests_waiting").items():
        row(dict(labels)["model"]).waiting = value
    for labels, value in now.series("llmeco_kv_cache_usage_ratio").items():
        row(dict(labels)["model"]).kv_usage = value
    for name, attr in (
        ("llmeco_prompt_tokens_total", "tokens_in_per_s"),
        ("llmeco_generation_tokens_total", "tokens_out_per_s"),
    ):
        per_model = _rate(
            _sum_by(now.series(name), "model"), _sum_by(base.series(name), "model"), dt
        )
        for model, value in per_model.items():
            setattr(row(model), attr, value)
    for name, prefix in (
        ("llmeco_time_to_first_token_seconds", "ttft"),
        ("llmeco_inter_token_latency_seconds", "itl"),
    ):
        before_buckets = _buckets_by_model(base, name)
        for model, buckets in _buckets_by_model(now, name).items():
            window = _window(buckets, before_buckets.get(model, {}))
            setattr(row(model), f"{prefix}_p50", quantile(0.5, window))
            setattr(row(model), f"{prefix}_p95", quantile(0.95, window))
    ready = now.series("llmeco_ready")
    rss = now.series("llmeco_process_resident_memory_bytes")
    return TopView(
        requests_per_s=sum(rates.values()),
        errors_per_s=sum(v for s, v in rates.items() if s.startswith("5")),
        rejected_per_s=rates.get("429", 0.0),
        ready=bool(next(iter(ready.values()))) if ready else None,
        rss_bytes=next(iter(rss.values())) if rss else None,
        models=sorted(models.values(), key=lambda r: r.model),
        keys=sorted(usage, key=lambda k: -k.total_tokens)[:10] if usage is not None else None,
        keys_note=note,
    )
