"""OpenTelemetry traces of each request: off by default, OTLP/HTTP export when configured.

One request's trace: the server span (``POST /v1/chat/completions``, W3C ``traceparent``
honoured) → ``auth`` → ``limits`` → ``retrieval`` (support assistant) → ``generate`` with
``engine.queue`` / ``engine.prefill`` / ``engine.decode`` → ``tool`` calls (agents) →
``grounding``; calls to upstream servers carry the trace on in their ``traceparent``.

Off (the default) every helper here returns before touching OpenTelemetry, so a request pays
one boolean test per span. :func:`configure` turns it on from the settings
(``OTEL_EXPORTER_OTLP_ENDPOINT``); tests call :func:`enable` with an SDK provider whose
exporter is in memory. The tracer is this module's own, not the process-global provider,
so tests can switch it on and off.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmeco.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None


def enabled() -> bool:
    """Whether spans are being recorded."""
    return _tracer is not None


def enable(provider: TracerProvider) -> None:
    """Record spans through ``provider`` (its processors export them)."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("llmeco")


def disable() -> None:
    """Stop recording spans; flush and shut down the provider this module was given."""
    global _tracer, _provider
    provider, _tracer, _provider = _provider, None, None
    if provider is not None:
        provider.shutdown()


def configure(settings: Settings) -> bool:
    """Export spans over OTLP/HTTP when ``settings.otlp_endpoint`` is set; True if on."""
    if not settings.otlp_endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = settings.otlp_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    enable(provider)
    log.info("exporting traces to %s", endpoint)
    return True


@contextlib.contextmanager
def server_span(
    name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]
) -> Iterator[trace.Span | None]:
    """The span of one HTTP request, a child of the caller's ``traceparent`` if it sent one."""
    if _tracer is None:
        yield None
        return
    parent = propagate.extract(headers)
    with _tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.SERVER, attributes=dict(attributes)
    ) as s:
        yield s


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span | None]:
    """A child span of the current one around a block (nothing when tracing is off)."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=attributes) as s:
        yield s


def current() -> Context | None:
    """The current trace context, to parent spans recorded later (None when off)."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


def now_ns() -> int:
    """Wall-clock nanoseconds, the time base of span start and end times."""
    return time.time_ns()


def record(
    name: str, start_ns: int, end_ns: int, parent: Context | None, **attributes: Any
) -> Context | None:
    """Record a span that already happened (engine phases measured by timestamps); returns
    a context whose current span is it, to parent further spans."""
    if _tracer is None or parent is None:
        return None
    s = _tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes)
    s.end(end_time=max(start_ns, end_ns))
    return trace.set_span_in_context(s, parent)


def set_error(s: trace.Span | None, status: int) -> None:
    """Mark a server span failed for a 5xx (4xx are the client's errors, per OTel HTTP)."""
    if s is not None:
        s.set_attribute("http.response.status_code", status)
        if status >= 500:
            s.set_status(Status(StatusCode.ERROR))
