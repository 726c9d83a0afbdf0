"""The server's error responses as exceptions of :mod:`llmeco.errors`.

The server turns each :mod:`llmeco.errors` exception into an OpenAI-style body
``{"error": {"message", "type", "param", "code"}}`` and a status (``server/errors.py``);
this module runs that table backwards. Each class here subclasses both :class:`APIError`
(status, type, code, request id, raw body) and the library exception the server raised, so
``except llmeco.errors.NotFound`` catches a 404 from the API exactly as it catches the same
error raised in-process.
"""

from __future__ import annotations

from typing import Any

import httpx

from llmeco import errors as E

REQUEST_ID_HEADER = "x-request-id"


class APIError(E.LlmecoError):
    """An error answer from the server (any status ≥ 400)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, param=param)
        self.status_code = status_code
        self.type = type
        self.code = code
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        rid = f", request {self.request_id}" if self.request_id else ""
        return f"{self.status_code} {self.type or 'error'}: {self.message}{rid}"


class BadRequestError(APIError, E.InvalidRequest):
    """400 or 422: a request the server can never serve as given; ``param`` names the field."""


class PayloadTooLargeError(APIError, E.PayloadTooLarge):
    """413: the body or an upload is over a server limit."""


class UnsupportedMediaError(APIError, E.UnsupportedMedia):
    """415: an upload the server cannot read."""


class AuthenticationError(APIError, E.AuthError):
    """401: missing, unknown, revoked or expired API key."""


class PermissionDeniedError(APIError, E.PermissionDenied):
    """403: the key lacks the scope or model the route needs."""


class NotFoundError(APIError, E.NotFound):
    """404: an unknown model, key, knowledge base, session …"""


class GateFailedError(APIError, E.GateFailed):
    """409: a promotion gate blocked the action."""


class RateLimitError(APIError, E.LimitExceeded):
    """429: a rate limit or budget; ``retry_after`` is the server's ``Retry-After``."""

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class OverloadedError(RateLimitError, E.Overloaded):
    """429 ``overloaded``: the engine's waiting queue is full."""


class ServiceUnavailableError(APIError, E.ServiceUnavailable):
    """503: a dependency of the server is down (or the server is draining)."""


class EngineDeadError(ServiceUnavailableError, E.EngineDead):
    """503 ``engine_unavailable``: the engine serves no more requests."""


class LimitsUnavailableError(ServiceUnavailableError, E.LimitsUnavailable):
    """503 ``limits_unavailable``: the shared limits store is down."""


class UpstreamAPIError(ServiceUnavailableError, E.UpstreamError):
    """502: every upstream of the gateway failed."""


class UpstreamTimeoutError(UpstreamAPIError, E.UpstreamTimeout):
    """504: the gateway's upstream did not answer in time."""


class InternalServerError(APIError, E.GenerateError):
    """500 (or any other unexpected status): a failure on the server; see its log."""


class APIConnectionError(E.ServiceUnavailable):
    """The server could not be reached (or broke the connection), after any retries."""


class APITimeoutError(APIConnectionError):
    """The server did not answer within the client's timeout, after any retries."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: GateFailedError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaError,
    422: BadRequestError,
    429: RateLimitError,
    500: InternalServerError,
    502: UpstreamAPIError,
    503: ServiceUnavailableError,
    504: UpstreamTimeoutError,
}

_BY_CODE: dict[tuple[int, str], type[APIError]] = {
    (429, "overloaded"): OverloadedError,
    (503, "engine_unavailable"): EngineDeadError,
    (503, "limits_unavailable"): LimitsUnavailableError,
}


def error_class(status: int, code: str | None) -> type[APIError]:
    """The exception class for an error ``status`` (and the body's ``code``)."""
    if code is not None and (status, code) in _BY_CODE:
        return _BY_CODE[status, code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return BadRequestError if 400 <= status < 500 else InternalServerError


def _detail(body: Any) -> dict[str, Any]:
    """The inner ``error`` object of an OpenAI-style body (FastAPI's ``detail`` too)."""
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            return inner
        if isinstance(inner, str):
            return {"message": inner}
        if "detail" in body:
            return {"message": str(body["detail"])}
    return {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def error_from_response(response: httpx.Response, retry_after: float | None = None) -> APIError:
    """The :class:`APIError` subclass for an error ``response``, with the server's message,
    type, param, code and request id (``retry_after``: the parsed ``Retry-After``)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    detail = _detail(body)
    code = _text(detail.get("code"))
    message = _text(detail.get("message")) or (
        f"HTTP {response.status_code} from {response.request.method} {response.request.url.path}"
    )
    cls = error_class(response.status_code, code)
    kw: dict[str, Any] = {
        "status_code": response.status_code,
        "type": _text(detail.get("type")),
        "code": code,
        "param": _text(detail.get("param")),
        "request_id": response.headers.get(REQUEST_ID_HEADER),
        "body": body,
    }
    if issubclass(cls, RateLimitError):
        return cls(message, retry_after=retry_after if retry_after is not None else 1.0, **kw)
    return cls(message, **kw)
