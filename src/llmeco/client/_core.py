"""The part of the client that does no I/O: routes, requests, responses, retry decisions.

:class:`~llmeco.client.Client` and :class:`~llmeco.client.AsyncClient` differ only in how
they send a request and sleep; everything else — which route a method calls, how its body
and query are built, how an answer is parsed or turned into an exception, and whether and
when to try again — is decided here, once.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from llmeco.client.errors import APIConnectionError, APITimeoutError, error_from_response

T = TypeVar("T")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class Route:
    """One server route a client method calls.

    ``body`` is the request model(s) the JSON (or multipart form) body must match: the
    drift test checks their names and fields against the server's OpenAPI schema.
    ``idempotent`` says whether sending it twice is harmless, so a connection that broke
    after the request went out may be retried; by default GET/PUT/DELETE are and POST/PATCH
    are not. ``retry`` is false for probes that must report, not wait out, a 503.
    ``omits`` names body fields of the server's schema the client never sends (the drift
    test accepts their absence).
    """

    method: str
    path: str
    response: Any
    body: tuple[type[BaseModel], ...] = ()
    query: tuple[str, ...] = ()
    multipart: bool = False
    idempotent: bool | None = None
    retry: bool = True
    omits: tuple[str, ...] = ()

    @property
    def safe_to_repeat(self) -> bool:
        """Whether the request may be sent again after it may have reached the server."""
        if self.idempotent is not None:
            return self.idempotent
        return self.method in IDEMPOTENT_METHODS


@dataclass
class Call(Generic[T]):
    """One request to make and how to read its answer (what a client method builds)."""

    route: Route
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client.request`` / ``httpx.AsyncClient.request``."""
        kw: dict[str, Any] = {"method": self.route.method, "url": self.path}
        if self.json is not None:
            kw["json"] = self.json
        if self.params:
            kw["params"] = self.params
        if self.files:
            kw["files"] = self.files
            kw["data"] = self.data
        if self.headers:
            kw["headers"] = self.headers
        return kw


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def parser(response_type: Any) -> Callable[[Any], Any]:
    """A function validating decoded JSON into ``response_type`` (cached per type)."""
    adapter = _ADAPTERS.get(response_type)
    if adapter is None:
        adapter = _ADAPTERS[response_type] = TypeAdapter(response_type)
    return adapter.validate_python


def dump(model: BaseModel) -> dict[str, Any]:
    """A request model as JSON: by alias, without fields left unset or set to None."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def build(
    route: Route,
    *,
    path_params: Mapping[str, str] | None = None,
    body: BaseModel | None = None,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
) -> Call[Any]:
    """A :class:`Call` of ``route``: its path filled in (each value URL-quoted), the body
    dumped, and query parameters that are None dropped."""
    path = route.path
    for name, value in (path_params or {}).items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
    payload = dump(body) if body is not None else json
    return Call(route=route, path=path, parse=parser(route.response), json=payload, params=query)


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


# ---------------------------------------------------------------- retries


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date
    (RFC 9110 §10.2.3); None when absent or unreadable. A date in the past is 0."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    Retried: answers with a status in ``statuses`` (429 and 503 by default: the server
    refused before doing anything, so every route may repeat), and connection failures —
    always when the request never left (refused, DNS, connect timeout), and only for
    idempotent routes when it may have reached the server (a read timeout or a dropped
    connection), so a key is never created twice. The wait is the server's
    ``Retry-After`` when it sends one (capped at ``max_retry_after``; a longer wait is
    not retried but raised), else exponential backoff ``backoff * 2**attempt`` capped at
    ``max_backoff``, with full jitter.
    """

    max_retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    statuses: frozenset[int] = frozenset({429, 503})
    rng: Callable[[], float] = field(default=random.random, repr=False)

    def backoff_delay(self, attempt: int) -> float:
        """Jittered exponential wait before retry number ``attempt + 1`` (0-based)."""
        cap = min(self.max_backoff, self.backoff * (2**attempt))
        return float(cap * self.rng())

    def delay_for_response(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying after ``response``, or None to not retry."""
        if attempt >= self.max_retries or response.status_code not in self.statuses:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None:
            return self.backoff_delay(attempt)
        if retry_after > self.max_retry_after:
            return None
        return retry_after

    def delay_for_error(
        self, exc: httpx.TransportError, route: Route, attempt: int
    ) -> float | None:
        """Seconds to wait before retrying after a connection failure, or None to raise."""
        if attempt >= self.max_retries:
            return None
        if not was_sent(exc) or route.safe_to_repeat:
            return self.backoff_delay(attempt)
        return None


def was_sent(exc: httpx.TransportError) -> bool:
    """Whether the request may have reached the server before ``exc`` (so that repeating a
    non-idempotent request could do it twice)."""
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


@dataclass(frozen=True)
class Done(Generic[T]):
    """A finished call's parsed answer."""

    value: T


class Attempts(Generic[T]):
    """The retry loop's decisions for one call; the sync and async clients drive it.

    Each attempt ends in :meth:`on_response` or :meth:`on_error`: either the result (or an
    exception to raise) or a wait in seconds before the next attempt.
    """

    def __init__(self, call: Call[T], policy: RetryPolicy) -> None:
        self.call = call
        self.policy = policy if call.route.retry else RetryPolicy(max_retries=0)
        self.attempt = 0
        self.waits: list[float] = []

    def on_response(self, response: httpx.Response) -> Done[T] | float:
        """The parsed answer on success, or the wait before retrying; raises the mapped
        :class:`~llmeco.client.errors.APIError` for an error answer not to retry."""
        if response.status_code < 400:
            body: Any = response.json() if response.content else None
            return Done(self.call.parse(body))
        wait = self.policy.delay_for_response(response, self.attempt)
        if wait is None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise error_from_response(response, retry_after)
        return self._next(wait)

    def on_error(self, exc: httpx.TransportError) -> float:
        """The wait before retrying after ``exc``; raises a connection error when done."""
        wait = self.policy.delay_for_error(exc, self.call.route, self.attempt)
        if wait is None:
            route = self.call.route
            what = f"{route.method} {self.call.path}"
            tries = self.attempt + 1
            if isinstance(exc, httpx.TimeoutException):
                raise APITimeoutError(
                    f"{what} timed out after {tries} attempt(s): {exc!r}"
                ) from exc
            raise APIConnectionError(f"{what} failed after {tries} attempt(s): {exc!r}") from exc
        return self._next(wait)

    def _next(self, wait: float) -> float:
        self.attempt += 1
        self.waits.append(wait)
        return wait
