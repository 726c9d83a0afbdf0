"""The upstream metrics of one server: attempts observed as they happen, breaker states
and outstanding requests read from the URL pools at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from llmeco.engine.backends.remote import UpstreamSet
from llmeco.observability.upstream_metrics import UpstreamMetrics
from llmeco.server.state import ServerState


def install_upstream_metrics(state: ServerState, upstreams: UpstreamSet) -> UpstreamMetrics:
    """Register the ``llmeco_upstream_*`` metrics in the server's registry and feed them."""

    def endpoints() -> Iterator[tuple[str, str, int, int]]:
        for name, e in upstreams.endpoints():
            yield name, e.url, int(e.breaker.state), e.outstanding

    metrics = UpstreamMetrics(state.metrics.registry, endpoints)
    upstreams.set_observer(metrics)
    return metrics
