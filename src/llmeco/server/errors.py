"""Every error the server returns, in OpenAI's shape, decided in this one module.

``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``

=====================================  ======  ==========================
exception                              status  type / code
=====================================  ======  ==========================
malformed JSON, schema violation       400     invalid_request_error
InvalidRequest, ConfigError, UnsafeFile 400    invalid_request_error
ContextLengthExceeded                  400     code context_length_exceeded
AuthError                              401     authentication_error
PermissionDenied                       403     permission_error
NotFound (unknown model)               404     code model_not_found
BodyTooLarge, PayloadTooLarge          413     invalid_request_error
UnsupportedMedia (not audio, …)        415     code unsupported_media_type
LimitExceeded, Overloaded              429     rate_limit_error + Retry-After
GateFailed (promotion gate)             409     invalid_request_error / gate_failed
EngineDead, shutting down              503     service_unavailable_error / engine_unavailable
LimitsUnavailable (Redis down)         503     service_unavailable_error / limits_unavailable
UpstreamError (gateway upstream down)  502     server_error / upstream_error
UpstreamTimeout (upstream too slow)    504     server_error / upstream_timeout
ServiceUnavailable (any other)         503     service_unavailable_error
GenerateError, any other exception     500     server_error (a bug: logged)
=====================================  ======  ==========================
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import MutableMapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from llmeco import errors as E
from llmeco.server.state import context_of

log = logging.getLogger("llmeco.server")


class BodyTooLarge(E.LlmecoError):
    """The request body is over ``settings.max_body_bytes``."""


class ClientGone(Exception):
    """The client disconnected before its response was ready; nothing is sent."""


class ErrorDetail(BaseModel):
    """The inside of an OpenAI error response."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """An OpenAI error response."""

    error: ErrorDetail


#: For OpenAPI docs: the error statuses any generation route may return.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 413, 429, 500, 503)
}

# (exception class, status, type, code); the first matching class wins, so subclasses first.
_TABLE: list[tuple[type[E.LlmecoError], int, str, str | None]] = [
    (E.ContextLengthExceeded, 400, "invalid_request_error", "context_length_exceeded"),
    (E.PayloadTooLarge, 413, "invalid_request_error", "request_too_large"),
    (E.UnsupportedMedia, 415, "invalid_request_error", "unsupported_media_type"),
    (E.InvalidRequest, 400, "invalid_request_error", None),
    (E.ConfigError, 400, "invalid_request_error", None),
    (E.UnsafeFile, 400, "invalid_request_error", None),
    (E.AuthError, 401, "authentication_error", "invalid_api_key"),
    (E.PermissionDenied, 403, "permission_error", None),
    (E.NotFound, 404, "invalid_request_error", "model_not_found"),
    (BodyTooLarge, 413, "invalid_request_error", "request_too_large"),
    (E.Overloaded, 429, "rate_limit_error", "overloaded"),
    (E.LimitExceeded, 429, "rate_limit_error", "rate_limit_exceeded"),
    (E.GateFailed, 409, "invalid_request_error", "gate_failed"),
    (E.EngineDead, 503, "service_unavailable_error", "engine_unavailable"),
    (E.LimitsUnavailable, 503, "service_unavailable_error", "limits_unavailable"),
    (E.UpstreamTimeout, 504, "server_error", "upstream_timeout"),
    (E.UpstreamError, 502, "server_error", "upstream_error"),
    (E.ServiceUnavailable, 503, "service_unavailable_error", None),
    (E.GenerateError, 500, "server_error", None),
]

#: Clearer messages for OpenAI parameters we deliberately do not support.
_UNSUPPORTED = {
    "audio": "audio output is not supported by this server",
    "modalities": "only text output is supported; remove `modalities`",
    "prediction": "predicted outputs are not supported by this server",
}


def payload(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The JSON body of an OpenAI error."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    type_: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response."""
    return JSONResponse(payload(message, type_, param, code), status_code=status, headers=headers)


def describe(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, body and headers for any exception; unknown ones are 500s (and logged)."""
    if isinstance(exc, E.LlmecoError):
        for cls, status, type_, code in _TABLE:
            if isinstance(exc, cls):
                headers: dict[str, str] = {}
                if isinstance(exc, E.LimitExceeded):
                    headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
                if status >= 500:
                    log.error("request failed: %s", exc.message)
                return status, payload(exc.message, type_, exc.param, code), headers
    log.error("unhandled error", exc_info=exc)
    return 500, payload("internal server error; see the server log", "server_error"), {}


def exception_response(exc: BaseException) -> JSONResponse:
    """A response for ``exc`` (see :func:`describe`)."""
    status, body, headers = describe(exc)
    return JSONResponse(body, status_code=status, headers=headers)


_TYPE_TAG = re.compile(r"^([A-Z]\w*|str|int|float|bool|none|\w+\[.*\]|function-\w+.*)$")


def param_name(loc: Sequence[int | str]) -> str | None:
    """``("body", "messages", 0, "content")`` → ``"messages[0].content"``."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _TYPE_TAG.match(part):
            out += f".{part}" if out else part
    return out or None


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """400 for a body that is not JSON or does not fit the schema, naming the parameter."""
    errors = list(exc.errors())
    if not errors:
        return error_response(400, "invalid request", "invalid_request_error")
    # Of a union's alternatives, the deepest location is usually the one the client meant.
    first = max(errors, key=lambda e: len(e.get("loc", ())))
    kind = str(first.get("type", ""))
    param = param_name(first.get("loc", ()))
    if kind == "json_invalid":
        detail = first.get("ctx", {}).get("error", "")
        return error_response(
            400,
            f"The request body is not valid JSON ({detail}).",
            "invalid_request_error",
            code="invalid_json",
        )
    if kind == "extra_forbidden":
        top = (param or "").split(".")[0].split("[")[0]
        message = _UNSUPPORTED.get(top) or f"Unrecognized request argument supplied: {param}"
        return error_response(400, message, "invalid_request_error", param, "unsupported_parameter")
    if kind == "missing" and param is None:
        return error_response(400, "The request body is missing.", "invalid_request_error")
    msg = str(first.get("msg", "invalid value"))
    message = f"{param}: {msg}" if param else msg
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return error_response(400, message, "invalid_request_error", param, "invalid_value")


def http_response(exc: StarletteHTTPException) -> Response:
    """404 for unknown routes, 405 for wrong methods, in the OpenAI shape."""
    headers = dict(exc.headers or {})
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return error_response(exc.status_code, str(exc.detail), type_, headers=headers)


def note_limit(scope: MutableMapping[str, Any], exc: BaseException) -> None:
    """Remember which limit refused the request (the per-key rejection metric's label)."""
    ctx = context_of(scope)
    if ctx is not None and isinstance(exc, E.LimitExceeded):
        ctx.limit = exc.limit


def install(app: FastAPI) -> None:
    """Register the handlers; generic exceptions are caught by the middleware."""

    async def on_llmeco(request: Request, exc: Exception) -> Response:
        note_limit(request.scope, exc)
        return exception_response(exc)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_response(exc)

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return http_response(exc)

    async def on_gone(_: Request, exc: Exception) -> Response:
        return Response(status_code=499)

    app.add_exception_handler(E.LlmecoError, on_llmeco)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ClientGone, on_gone)
