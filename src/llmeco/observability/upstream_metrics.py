"""Prometheus metrics of the gateway's upstreams, labelled by upstream model and URL.

* ``llmeco_upstream_requests_total{upstream,url,outcome}``: every attempt, by outcome (the
  HTTP status, or ``timeout`` / ``connect_error`` / ``broken`` / ``probe_failed`` /
  ``cancelled``);
* ``llmeco_upstream_errors_total{upstream,url,outcome}``: the failed ones (no answer, a
  broken answer, 5xx, a failed probe);
* ``llmeco_upstream_request_duration_seconds{upstream,url}``: attempt latency (a stream's
  until its last byte);
* ``llmeco_upstream_breaker_state{upstream,url}``: 0 closed, 1 open, 2 half-open, and
  ``llmeco_upstream_outstanding_requests{upstream,url}``, both read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)

#: (upstream, url, breaker state 0/1/2, outstanding requests) of every URL, now.
EndpointSource = Callable[[], Iterable[tuple[str, str, int, int]]]


class _EndpointCollector(Collector):
    def __init__(self, source: EndpointSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        labels = ["upstream", "url"]
        state = GaugeMetricFamily(
            "llmeco_upstream_breaker_state",
            "Circuit breaker of an upstream URL: 0 closed, 1 open (ejected), 2 half-open.",
            labels=labels,
        )
        outstanding = GaugeMetricFamily(
            "llmeco_upstream_outstanding_requests",
            "Requests sent to an upstream URL and not finished.",
            labels=labels,
        )
        for upstream, url, breaker, count in self._source():
            state.add_metric([upstream, url], breaker)
            outstanding.add_metric([upstream, url], count)
        yield from (state, outstanding)


def _failed(outcome: str) -> bool:
    if outcome.isdigit():
        return int(outcome) >= 500
    return outcome != "cancelled"


class UpstreamMetrics:
    """The upstream metrics of one server, registered in its registry."""

    def __init__(self, registry: CollectorRegistry, endpoints: EndpointSource) -> None:
        labels = ["upstream", "url", "outcome"]
        self.requests = Counter(
            "llmeco_upstream_requests",
            "Attempts sent to upstream URLs, by outcome.",
            labels,
            registry=registry,
        )
        self.errors = Counter(
            "llmeco_upstream_errors",
            "Failed attempts on upstream URLs (no answer, broken answer, 5xx, failed probe).",
            labels,
            registry=registry,
        )
        self.latency = Histogram(
            "llmeco_upstream_request_duration_seconds",
            "Latency of attempts on upstream URLs (streams: until the last byte).",
            ["upstream", "url"],
            buckets=_BUCKETS,
            registry=registry,
        )
        registry.register(_EndpointCollector(endpoints))

    def observe(self, upstream: str, url: str, outcome: str, seconds: float) -> None:
        """Record one attempt (the engine's ``UpstreamObserver``)."""
        self.requests.labels(upstream, url, outcome).inc()
        if _failed(outcome):
            self.errors.labels(upstream, url, outcome).inc()
        if outcome != "probe_failed":
            self.latency.labels(upstream, url).observe(seconds)
