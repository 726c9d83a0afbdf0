"""Prometheus metrics for the server, all prefixed ``llmeco_`` and labelled by model.

Each app gets its own :class:`~prometheus_client.CollectorRegistry` (no global state, so
tests and several apps in one process don't collide). Engine gauges (running, waiting,
KV-cache usage) are read from ``engine.stats()`` at scrape time by a custom collector,
so they are never stale and cost nothing between scrapes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llmeco.engine.protocol import EngineStats
from llmeco.engine.request import RequestOutput
from llmeco.governance.audit import AuditLedger
from llmeco.observability import tracing
from llmeco.observability.audit_metrics import AuditCollector

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)
_AUDIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2.5)

StatsSource = Callable[[], Mapping[str, EngineStats]]


class _EngineCollector(Collector):
    """Reads each engine's stats (and CUDA memory when torch is in use) at scrape time."""

    def __init__(self, stats: StatsSource, queue_capacity: int = 0) -> None:
        self._stats = stats
        self._queue_capacity = queue_capacity

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "llmeco_num_requests_running", "Requests being decoded now.", labels=["model"]
        )
        waiting = GaugeMetricFamily(
            "llmeco_num_requests_waiting", "Requests waiting for KV memory.", labels=["model"]
        )
        kv = GaugeMetricFamily(
            "llmeco_kv_cache_usage_ratio", "Fraction of KV-cache blocks in use.", labels=["model"]
        )
        preemptions = CounterMetricFamily(
            "llmeco_num_preemptions",
            "Sequences preempted (KV blocks freed, recomputed later) since the engine started.",
            labels=["model"],
        )
        queried = CounterMetricFamily(
            "llmeco_prefix_cache_queries_tokens",
            "Prompt tokens looked up in the prefix cache at admission.",
            labels=["model"],
        )
        hits = CounterMetricFamily(
            "llmeco_prefix_cache_hits_tokens",
            "Prompt tokens found in the prefix cache (K/V reused, not recomputed).",
            labels=["model"],
        )
        hit_rate = GaugeMetricFamily(
            "llmeco_prefix_cache_hit_rate",
            "Cached prompt tokens / prompt tokens looked up, since the engine started.",
            labels=["model"],
        )
        drafted = CounterMetricFamily(
            "llmeco_spec_decode_draft_tokens",
            "Speculative draft tokens verified by the served model.",
            labels=["model"],
        )
        accepted = CounterMetricFamily(
            "llmeco_spec_decode_accepted_tokens",
            "Speculative draft tokens accepted (emitted without a step of their own).",
            labels=["model"],
        )
        acceptance = GaugeMetricFamily(
            "llmeco_spec_decode_acceptance_rate",
            "Accepted / drafted speculative tokens since the engine started.",
            labels=["model"],
        )
        capacity = GaugeMetricFamily(
            "llmeco_queue_capacity_requests",
            "Requests allowed to wait for KV memory (LLMECO_MAX_QUEUE); past it, 429.",
            labels=["model"],
        )
        for model, s in self._stats().items():
            running.add_metric([model], s.running)
            waiting.add_metric([model], s.waiting)
            kv.add_metric([model], s.kv_usage)
            preemptions.add_metric([model], s.preemptions)
            queried.add_metric([model], s.prefix_queried_tokens)
            hits.add_metric([model], s.prefix_hit_tokens)
            rate = s.prefix_hit_tokens / s.prefix_queried_tokens if s.prefix_queried_tokens else 0
            hit_rate.add_metric([model], rate)
            drafted.add_metric([model], s.spec_draft_tokens)
            accepted.add_metric([model], s.spec_accepted_tokens)
            spec_rate = s.spec_accepted_tokens / s.spec_draft_tokens if s.spec_draft_tokens else 0
            acceptance.add_metric([model], spec_rate)
            capacity.add_metric([model], self._queue_capacity)
        yield from (running, waiting, kv, preemptions, queried, hits, hit_rate)
        yield from (drafted, accepted, acceptance)
        if self._queue_capacity:
            yield capacity
        gpu = _gpu_memory()
        if gpu is not None:
            yield gpu


def _gpu_memory() -> Metric | None:
    """CUDA memory allocated by torch, only if torch is already loaded and CUDA initialised."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    family = GaugeMetricFamily(
        "llmeco_gpu_memory_allocated_bytes", "CUDA memory allocated by torch.", labels=["device"]
    )
    for i in range(torch.cuda.device_count()):
        family.add_metric([str(i)], float(torch.cuda.memory_allocated(i)))
    return family


class ServerMetrics:
    """Every metric one server exposes, in a registry of its own."""

    def __init__(self, stats: StatsSource, queue_capacity: int = 0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "llmeco_requests",
            "HTTP requests by model, route and status code.",
            ["model", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "llmeco_http_request_duration_seconds",
            "Time from receiving a request to the end of its response, by model and route.",
            ["model", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e_latency = Histogram(
            "llmeco_e2e_request_latency_seconds",
            "Arrival to last token of a generation request.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "llmeco_time_to_first_token_seconds",
            "Arrival to first generated token.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "llmeco_inter_token_latency_seconds",
            "Time between successive generated tokens of one sequence.",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "llmeco_request_queue_time_seconds",
            "Time a request waited before it was scheduled.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "llmeco_prompt_tokens", "Prompt tokens processed.", ["model"], registry=r
        )
        self.generation_tokens = Counter(
            "llmeco_generation_tokens", "Tokens generated.", ["model"], registry=r
        )
        self.limit_rejections = Counter(
            "llmeco_limit_rejections",
            "Requests refused with 429, by API key id (never the secret; `none` without auth) "
            "and limit: rpm, tpm, daily_budget, queue.",
            ["key_id", "limit"],
            registry=r,
        )
        self.budget_remaining = Gauge(
            "llmeco_key_budget_remaining_ratio",
            "Share of a key's daily token budget left after its latest request (keys with a "
            "budget only).",
            ["key_id"],
            registry=r,
        )
        self.app_turns = Counter(
            "llmeco_app_turns", "Turns an app answered or handed off, by app.", ["app"], registry=r
        )
        self.app_handoffs = Counter(
            "llmeco_app_handoffs", "Turns an app handed to a person, by app.", ["app"], registry=r
        )
        self.app_feedback = Counter(
            "llmeco_app_feedback",
            "Ratings of an app's answers, by app and rating (up, down).",
            ["app", "rating"],
            registry=r,
        )
        for rating in ("up", "down"):  # series exist (at 0) before the first rating
            self.app_feedback.labels("support", rating)
        self.app_turns.labels("support")
        self.app_handoffs.labels("support")
        self.audit_append = Histogram(
            "llmeco_audit_append_seconds",
            "Time from queuing a request's audit entry to its commit (group commit included).",
            buckets=_AUDIT_BUCKETS,
            registry=r,
        )
        self.audit_failures = Counter(
            "llmeco_audit_append_failures",
            "Audit entries that could not be committed (their requests were not acknowledged).",
            registry=r,
        )
        self.ready = Gauge(
            "llmeco_ready",
            "1 when every engine passes its health check and the server is not draining "
            "(evaluated at each scrape, as /ready).",
            registry=r,
        )
        r.register(_EngineCollector(stats, queue_capacity))
        # process_resident_memory_bytes etc., prefixed: llmeco_process_resident_memory_bytes.
        ProcessCollector(namespace="llmeco", registry=r)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def watch_ledger(self, ledger: AuditLedger) -> None:
        """Expose the audit ledger's checkpoint gauges (see ``audit_metrics.py``)."""
        self.registry.register(AuditCollector(ledger))

    def set_budget_left(self, key_id: str, ratio: float) -> None:
        """Record the share of a key's daily token budget left (0..1) after a charge."""
        self.budget_remaining.labels(key_id).set(ratio)

    def timer(self, model: str) -> GenerationTimer:
        """Start timing one generation request for ``model``."""
        return GenerationTimer(self, model)


class GenerationTimer:
    """Turns one request's stream of outputs into TTFT, ITL, queue and e2e observations."""

    def __init__(self, metrics: ServerMetrics, model: str) -> None:
        self._m = metrics
        self._model = model
        self._start = time.perf_counter()
        self._last: float | None = None
        self._queued = False
        # Traces: the engine phases become spans when the request ends (None: tracing off).
        self._trace = tracing.current()
        self._start_ns = tracing.now_ns() if self._trace is not None else 0
        self._queue_s = 0.0
        self._first_ns = 0

    def observe(self, out: RequestOutput) -> None:
        """Record one engine output (call it for every item of the stream)."""
        if out.queue_time is not None and not self._queued:
            self._queued = True
            self._queue_s = out.queue_time
            self._m.queue_time.labels(self._model).observe(out.queue_time)
        step = max((len(d.token_ids) for d in out.deltas), default=0)
        if step == 0:
            return
        now = time.perf_counter()
        if self._last is None:
            self._m.ttft.labels(self._model).observe(now - self._start)
            if self._trace is not None:
                self._first_ns = tracing.now_ns()
        else:
            per_token = (now - self._last) / step
            self._m.itl.labels(self._model).observe(per_token)
        self._last = now

    def finish(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Record the end of the request and its token counts."""
        self._m.e2e_latency.labels(self._model).observe(time.perf_counter() - self._start)
        self._m.prompt_tokens.labels(self._model).inc(prompt_tokens)
        self._m.generation_tokens.labels(self._model).inc(completion_tokens)
        if self._trace is not None:
            self._record_spans(prompt_tokens, completion_tokens)

    def _record_spans(self, prompt_tokens: int, completion_tokens: int) -> None:
        """``generate`` and its phases: queued, prefill (to the first token), decode."""
        end = tracing.now_ns()
        start = self._start_ns
        scheduled = min(end, start + int(self._queue_s * 1e9))
        first = self._first_ns or end
        parent = tracing.record(
            "generate",
            start,
            end,
            self._trace,
            **{
                "llmeco.model": self._model,
                "gen_ai.usage.input_tokens": prompt_tokens,
                "gen_ai.usage.output_tokens": completion_tokens,
            },
        )
        tracing.record("engine.queue", start, scheduled, parent)
        tracing.record("engine.prefill", scheduled, max(scheduled, first), parent)
        tracing.record("engine.decode", max(scheduled, first), end, parent)
