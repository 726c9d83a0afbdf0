"""Relaying requests to other OpenAI-compatible servers: retries, timeouts, fallbacks.

:class:`UpstreamModel` sends one request to one upstream model over its :class:`UrlPool`
and hands back the upstream's own bytes (:class:`UpstreamReply`): the whole body of a
non-streamed answer, or the first chunk of a stream plus an iterator over the rest. The
server relays those bytes unchanged; nothing is re-generated here.

Retry policy: connection errors (refused, reset, connect timeout, a response cut off before
its end) and 502/503/504 answers are retried with exponential backoff, each time on a URL
the request has not tried yet when there is one — but only **before any byte reached the
client**: a non-streamed body is read whole inside the attempt, and a stream is returned
only once its first chunk arrived. A stream that breaks later raises ``UpstreamError`` from
its iterator (the server ends the SSE stream with an error event). A read timeout is not
retried: the upstream accepted the request and hangs, so the client gets our 504 after the
upstream's ``timeout`` instead of waiting for several of them. 4xx answers (and other
statuses) are handed back as they are, for the server to relay.

:class:`UpstreamSet` is every upstream of one server: it tries a model's ``fallbacks`` when
all of its URLs fail, and runs the health probes that re-admit ejected URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from opentelemetry import propagate

from llmeco.engine.backends.aiohttp_transport import AiohttpTransport
from llmeco.engine.backends.routing import Clock, Endpoint, UrlPool
from llmeco.engine.backends.upstream_config import UpstreamsConfig, UpstreamSpec
from llmeco.errors import UpstreamError, UpstreamTimeout

log = logging.getLogger("llmeco.gateway")

#: Upstream statuses that mean "this URL cannot serve now; another may" (retried).
RETRY_STATUSES = frozenset({502, 503, 504})

Sleep = Callable[[float], Awaitable[None]]


class UpstreamObserver(Protocol):
    """Receives one observation per upstream attempt (the server's Prometheus metrics)."""

    def observe(self, upstream: str, url: str, outcome: str, seconds: float) -> None:
        """``outcome``: the HTTP status (``"200"``), or ``timeout`` / ``connect_error`` /
        ``broken`` (the response was cut off)."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts (before the first byte only)."""

    retries: int = 2
    backoff: float = 0.1
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based retries: 1, 2, …)."""
        return min(self.max_delay, self.backoff * 2.0 ** (attempt - 1))

    @staticmethod
    def retriable_status(status: int) -> bool:
        """Whether an upstream answer with this status is retried (502/503/504)."""
        return status in RETRY_STATUSES

    @staticmethod
    def retriable_error(exc: httpx.TransportError) -> bool:
        """Whether a transport error is retried: every one but a read/write timeout on an
        upstream that accepted the request (it hangs; our timeout answers 504)."""
        return not isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout)


@dataclass
class UpstreamReply:
    """An upstream's answer, as bytes to relay.

    Non-streamed (or an error status): ``body`` is the whole body and ``chunks`` is None.
    Streamed: ``body`` is the first chunk and ``chunks`` yields the rest (raising
    ``UpstreamError`` if the upstream breaks the stream). :meth:`aclose` must be called.
    """

    status: int
    content_type: str
    body: bytes
    upstream: str
    url: str
    chunks: AsyncIterator[bytes] | None = None
    _close: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    async def aclose(self) -> None:
        """Release the upstream connection (idempotent)."""
        close, self._close = self._close, None
        if close is not None:
            await close()

    def json(self) -> Any:
        """The body parsed as JSON (None if it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _Attempt:
    """Book-keeping of one attempt on one URL: outstanding count, breaker, metrics."""

    def __init__(self, model: UpstreamModel, endpoint: Endpoint) -> None:
        self.model = model
        self.endpoint = endpoint
        self.start = time.perf_counter()
        self.done = False
        endpoint.outstanding += 1
        endpoint.requests += 1

    def finish(self, outcome: str, *, failed: bool) -> None:
        if self.done:
            return
        self.done = True
        e = self.endpoint
        e.outstanding -= 1
        if failed:
            e.failures += 1
            e.breaker.record_failure()
        else:
            e.breaker.record_success()
        self.model.observe(e.url, outcome, time.perf_counter() - self.start)


class UpstreamModel:
    """One upstream model: its URLs, timeout, key, and the retry policy."""

    def __init__(
        self,
        spec: UpstreamSpec,
        client: httpx.AsyncClient,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        observer: UpstreamObserver | None = None,
    ) -> None:
        self.spec = spec
        self.client = client
        self.pool = UrlPool(
            spec.urls, failure_threshold=spec.failure_threshold, cooldown=spec.cooldown, clock=clock
        )
        self.policy = RetryPolicy(spec.retries, spec.backoff)
        self.timeout = httpx.Timeout(spec.timeout)
        self._sleep = sleep
        self.observer = observer
        self._key = spec.api_key()
        #: The upstream's context length, learnt from its ``/models`` by a probe (0: unknown).
        self.max_model_len = 0
        self.created = int(time.time())

    @property
    def name(self) -> str:
        """The client-facing model name."""
        return self.spec.name

    def observe(self, url: str, outcome: str, seconds: float) -> None:
        """Report one attempt to the observer, if any."""
        if self.observer is not None:
            self.observer.observe(self.name, url, outcome, seconds)

    def headers(self, request_id: str | None = None) -> dict[str, str]:
        """Headers of every upstream request (the key is never logged)."""
        headers = {"Accept": "application/json, text/event-stream"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        if request_id:
            headers["X-Request-ID"] = request_id
        return headers

    async def send(
        self, path: str, body: dict[str, Any], *, stream: bool, request_id: str | None = None
    ) -> UpstreamReply:
        """POST ``body`` (its ``model`` replaced by the upstream's name) to ``<url><path>``.

        Raises ``UpstreamTimeout`` when the upstream did not answer in time and
        ``UpstreamError`` when every attempt failed (or no URL is admitted).
        """
        payload = {**body, "model": self.spec.upstream_model}
        content = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {**self.headers(request_id), "Content-Type": "application/json"}
        # W3C traceparent of the request being traced (nothing when tracing is off).
        propagate.inject(headers)
        tried: list[Endpoint] = []
        last: UpstreamError | None = None
        for attempt in range(self.policy.retries + 1):
            endpoint = self.pool.pick(exclude=tried) or self.pool.pick()
            if endpoint is None:
                break
            if attempt:
                await self._sleep(self.policy.delay(attempt))
            tried.append(endpoint)
            try:
                return await self._attempt(endpoint, path, content, headers, stream)
            except UpstreamTimeout:
                raise
            except UpstreamError as exc:
                last = exc
                log.warning(
                    "upstream attempt failed",
                    extra={"model": self.name, "url": endpoint.url, "error": exc.message},
                )
        if last is None:
            last = UpstreamError(
                f"upstream {self.name!r}: every URL is ejected after failures; "
                "retry after the cool-down"
            )
        raise last

    async def _attempt(
        self, endpoint: Endpoint, path: str, content: bytes, headers: dict[str, str], stream: bool
    ) -> UpstreamReply:
        track = _Attempt(self, endpoint)
        request = self.client.build_request(
            "POST", endpoint.url + path, content=content, headers=headers, timeout=self.timeout
        )
        response: httpx.Response | None = None
        try:
            response = await self.client.send(request, stream=True)
            status = response.status_code
            ctype = response.headers.get("content-type", "application/json")
            if self.policy.retriable_status(status) or not stream or status >= 300:
                raw = await response.aread()
                await response.aclose()
                if self.policy.retriable_status(status):
                    track.finish(str(status), failed=True)
                    raise UpstreamError(
                        f"upstream {self.name!r} answered {status} at {endpoint.url}: "
                        f"{raw[:200].decode(errors='replace')}"
                    )
                track.finish(str(status), failed=False)
                return UpstreamReply(status, ctype, raw, self.name, endpoint.url)
            chunks = response.aiter_raw()
            first = b""
            while not first:  # an empty chunk is not a byte for the client
                first = await anext(chunks)
        except StopAsyncIteration:
            assert response is not None
            await response.aclose()
            track.finish("broken", failed=True)
            raise UpstreamError(f"upstream {self.name!r} ended a stream without data") from None
        except httpx.TransportError as exc:
            if response is not None:
                await response.aclose()
            raise self._transport_failure(track, exc) from exc
        except BaseException:
            if response is not None:
                await response.aclose()
            track.finish("cancelled", failed=False)
            raise
        return self._streamed(track, response, ctype, first, chunks)

    def _transport_failure(self, track: _Attempt, exc: httpx.TransportError) -> UpstreamError:
        url = track.endpoint.url
        if isinstance(exc, httpx.TimeoutException) and not self.policy.retriable_error(exc):
            track.finish("timeout", failed=True)
            return UpstreamTimeout(
                f"upstream {self.name!r} did not answer within {self.spec.timeout:g} s at {url}"
            )
        outcome = "connect_error" if isinstance(exc, httpx.ConnectError) else "broken"
        if isinstance(exc, httpx.ConnectTimeout):
            outcome = "timeout"
        track.finish(outcome, failed=True)
        return UpstreamError(f"upstream {self.name!r} failed at {url}: {type(exc).__name__}")

    def _streamed(
        self,
        track: _Attempt,
        response: httpx.Response,
        ctype: str,
        first: bytes,
        chunks: AsyncIterator[bytes],
    ) -> UpstreamReply:
        async def rest() -> AsyncIterator[bytes]:
            try:
                async for chunk in chunks:
                    yield chunk
            except httpx.TransportError as exc:
                err = self._transport_failure(track, exc)
                raise UpstreamError(
                    f"{err.message} after the stream started; the response is incomplete"
                ) from exc
            track.finish(str(response.status_code), failed=False)

        async def close() -> None:
            await response.aclose()
            track.finish("cancelled", failed=False)  # no-op when the stream ended

        return UpstreamReply(
            response.status_code, ctype, first, self.name, track.endpoint.url, rest(), close
        )

    async def probe(self, endpoint: Endpoint) -> bool:
        """``GET <url>/models``: closes the URL's breaker on 200, re-opens it otherwise.

        Also learns the upstream model's ``max_model_len`` when the server reports it.
        """
        start = time.perf_counter()
        try:
            response = await self.client.get(
                endpoint.url + "/models",
                headers=self.headers(),
                timeout=httpx.Timeout(min(self.spec.timeout, 5.0)),
            )
        except httpx.TransportError as exc:
            endpoint.breaker.record_failure()
            self.observe(endpoint.url, "probe_failed", time.perf_counter() - start)
            log.info("upstream probe failed", extra={"url": endpoint.url, "error": repr(exc)})
            return False
        if response.status_code != 200:
            endpoint.breaker.record_failure()
            self.observe(endpoint.url, "probe_failed", time.perf_counter() - start)
            return False
        endpoint.breaker.record_success()
        self._learn(response)
        log.info("upstream URL re-admitted", extra={"model": self.name, "url": endpoint.url})
        return True

    def _learn(self, response: httpx.Response) -> None:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            for card in response.json().get("data", []):
                if card.get("id") == self.spec.upstream_model:
                    length = card.get("max_model_len") or card.get("context_length")
                    if isinstance(length, int):
                        self.max_model_len = length


class UpstreamSet:
    """Every upstream of one server: lookup, fallbacks, health probes, one HTTP client."""

    def __init__(
        self,
        config: UpstreamsConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        probe_interval: float = 1.0,
    ) -> None:
        self._owns_client = client is None
        self.client = client or httpx.AsyncClient(
            transport=AiohttpTransport(max_connections=1024), follow_redirects=False
        )
        self.models = {
            spec.name: UpstreamModel(spec, self.client, clock=clock, sleep=sleep)
            for spec in config.upstreams
        }
        self.probe_interval = probe_interval
        self._task: asyncio.Task[None] | None = None

    def names(self) -> list[str]:
        """The client-facing model names."""
        return list(self.models)

    def set_observer(self, observer: UpstreamObserver) -> None:
        """Send every attempt's outcome to ``observer`` (the server's metrics)."""
        for model in self.models.values():
            model.observer = observer

    def chain(self, name: str) -> list[UpstreamModel]:
        """``name`` and then its fallbacks, breadth first, each model once."""
        order: list[str] = [name]
        for current in order:
            for fallback in self.models[current].spec.fallbacks:
                if fallback not in order:
                    order.append(fallback)
        return [self.models[n] for n in order]

    async def send(
        self,
        name: str,
        path: str,
        body: dict[str, Any],
        *,
        stream: bool,
        request_id: str | None = None,
        allowed: Callable[[str], bool] = lambda _: True,
    ) -> UpstreamReply:
        """Send to upstream ``name``; when it fails entirely, to each allowed fallback.

        The first model's error is raised when every model in the chain failed.
        """
        first: UpstreamError | None = None
        for model in self.chain(name):
            if model.name != name and not allowed(model.name):
                continue
            try:
                reply = await model.send(path, body, stream=stream, request_id=request_id)
            except UpstreamError as exc:
                first = first or exc
                continue
            if model.name != name:
                log.info("served by a fallback", extra={"model": name, "fallback": model.name})
            return reply
        assert first is not None
        raise first

    def endpoints(self) -> Iterable[tuple[str, Endpoint]]:
        """Every (model name, URL endpoint), for metrics and status."""
        for model in self.models.values():
            for endpoint in model.pool.endpoints:
                yield model.name, endpoint

    async def probe_due(self) -> None:
        """Probe every half-open URL once (concurrently)."""
        probes = [m.probe(e) for m in self.models.values() for e in m.pool.due_for_probe()]
        if probes:
            await asyncio.gather(*probes)

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                await self.probe_due()
            except Exception as exc:  # a probe bug must not end re-admission for good
                log.error("upstream probes failed", exc_info=exc)

    async def start(self) -> None:
        """Learn each model's context length (one probe per model, failures ignored) and
        start the background probes that re-admit ejected URLs."""

        async def learn(model: UpstreamModel) -> None:
            endpoint = model.pool.endpoints[0]
            with contextlib.suppress(httpx.HTTPError):
                response = await model.client.get(
                    endpoint.url + "/models", headers=model.headers(), timeout=2.0
                )
                if response.status_code == 200:
                    model._learn(response)

        await asyncio.gather(*(learn(m) for m in self.models.values()))
        if self._task is None:
            self._task = asyncio.create_task(self._probe_loop())

    async def aclose(self) -> None:
        """Stop the probes and close the HTTP client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_client:
            await self.client.aclose()
