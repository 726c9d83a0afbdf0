"""The client's request building, error mapping and retry decisions, over
``httpx.MockTransport`` (the real-server tests are in tests/integration/client)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from llmeco import errors as E
from llmeco.client import AsyncClient, Client, RetryPolicy, parse_retry_after
from llmeco.client import errors as CE

Handler = Callable[[httpx.Request], httpx.Response]
FAST = RetryPolicy(max_retries=2, backoff=0.001, max_backoff=0.002)


def client(handler: Handler, retry: RetryPolicy = FAST) -> Client:
    return Client("http://llmeco.test", "sk-test", retry=retry,
                  transport=httpx.MockTransport(handler))  # fmt: skip


def error(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """An OpenAI-style error answer, as the server sends it."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return httpx.Response(status, json=body, headers={"x-request-id": "req-1", **(headers or {})})


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    top = RetryPolicy(backoff=0.5, max_backoff=3.0, rng=lambda: 1.0)
    assert [top.backoff_delay(a) for a in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert RetryPolicy(backoff=0.5, rng=lambda: 0.25).backoff_delay(2) == 0.5


@pytest.mark.parametrize(
    ("status", "type_", "code", "cls", "base"),
    [
        (400, "invalid_request_error", None, CE.BadRequestError, E.InvalidRequest),
        (422, "invalid_request_error", None, CE.BadRequestError, E.InvalidRequest),
        (401, "authentication_error", "invalid_api_key", CE.AuthenticationError, E.AuthError),
        (403, "permission_error", None, CE.PermissionDeniedError, E.PermissionDenied),
        (404, "invalid_request_error", "model_not_found", CE.NotFoundError, E.NotFound),
        (409, "invalid_request_error", "gate_failed", CE.GateFailedError, E.GateFailed),
        (413, "invalid_request_error", "request_too_large", CE.PayloadTooLargeError,
         E.PayloadTooLarge),
        (415, "invalid_request_error", "unsupported_media_type", CE.UnsupportedMediaError,
         E.UnsupportedMedia),
        (429, "rate_limit_error", "rate_limit_exceeded", CE.RateLimitError, E.LimitExceeded),
        (429, "rate_limit_error", "overloaded", CE.OverloadedError, E.Overloaded),
        (503, "service_unavailable_error", "engine_unavailable", CE.EngineDeadError,
         E.EngineDead),
        (503, "service_unavailable_error", "limits_unavailable", CE.LimitsUnavailableError,
         E.LimitsUnavailable),
        (503, "service_unavailable_error", None, CE.ServiceUnavailableError,
         E.ServiceUnavailable),
        (502, "server_error", "upstream_error", CE.UpstreamAPIError, E.UpstreamError),
        (504, "server_error", "upstream_timeout", CE.UpstreamTimeoutError, E.UpstreamTimeout),
        (500, "server_error", None, CE.InternalServerError, E.GenerateError),
    ],
)  # fmt: skip
def test_error_answers_map_to_the_exception_tree(
    status: int, type_: str, code: str | None, cls: type[CE.APIError], base: type[Exception]
) -> None:
    response = error(status, "it went wrong", type_, code, "text", {"retry-after": "7"})
    with client(lambda r: response, RetryPolicy(max_retries=0)) as c, pytest.raises(cls) as info:
        c.translate("hi", "French")
    exc = info.value
    assert isinstance(exc, base) and isinstance(exc, E.LlmecoError)
    assert (exc.status_code, exc.type, exc.code) == (status, type_, code)
    assert (exc.message, exc.param, exc.request_id) == ("it went wrong", "text", "req-1")
    if isinstance(exc, E.LimitExceeded):
        assert exc.retry_after == 7.0


def test_an_error_body_that_is_not_json_still_maps_by_status() -> None:
    not_json = httpx.Response(404, text="<html>nope</html>")
    with client(lambda r: not_json) as c, pytest.raises(E.NotFound, match=r"HTTP 404 from GET"):
        c.get_key("k1")


def test_requests_carry_the_key_the_path_query_and_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"alias": "a/b c", "model": "m"})

    with client(handler) as c:
        c.set_alias("a/b c", "m")
    request = seen[0]
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.url.raw_path == b"/admin/aliases/a%2Fb%20c"
    assert json.loads(request.content) == {"model": "m"}


def test_update_key_sends_only_the_limits_given_and_null_removes_one() -> None:
    bodies: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(500)

    with client(handler, RetryPolicy(max_retries=0)) as c:
        for kwargs in ({"rpm": 5}, {"tpm": None, "daily_tokens": 9}):
            with pytest.raises(CE.InternalServerError):
                c.update_key("k1", **kwargs)
    assert bodies == [{"rpm": 5}, {"tpm": None, "daily_tokens": 9}]


def test_a_retry_after_over_the_cap_is_raised_not_waited() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return error(429, "budget spent", "rate_limit_error", headers={"retry-after": "3600"})

    with client(handler) as c, pytest.raises(CE.RateLimitError) as info:
        c.usage()
    assert len(calls) == 1 and info.value.retry_after == 3600.0


def test_ready_reports_a_503_at_once() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return error(503, "the server is shutting down", "service_unavailable_error", "draining")

    with client(handler) as c, pytest.raises(E.ServiceUnavailable, match="shutting down"):
        c.ready()
    assert len(calls) == 1


def dropping(exc: type[httpx.TransportError], log: list[str]) -> Handler:
    """A transport failing every request with ``exc`` (after logging its method)."""

    def handler(request: httpx.Request) -> httpx.Response:
        log.append(request.method)
        raise exc("boom", request=request)

    return handler


def test_a_broken_connection_repeats_only_idempotent_requests() -> None:
    log: list[str] = []
    with client(dropping(httpx.ReadError, log)) as c:
        with pytest.raises(CE.APIConnectionError, match="failed after 3 attempt"):
            c.list_keys()  # GET: repeated
        assert log == ["GET"] * 3
        log.clear()
        with pytest.raises(CE.APIConnectionError, match="after 1 attempt"):
            c.create_key("ci", ["chat"])  # may have been created: never sent twice
        assert log == ["POST"]
        log.clear()
        with pytest.raises(CE.APIConnectionError):
            c.translate("hi", "French")  # a task changes nothing: repeated
        assert log == ["POST"] * 3


def test_a_request_that_never_left_is_always_repeated() -> None:
    log: list[str] = []
    with client(dropping(httpx.ConnectError, log)) as c, pytest.raises(E.ServiceUnavailable):
        c.create_key("ci", ["chat"])
    assert log == ["POST"] * 3


def test_a_timeout_is_an_api_timeout_error() -> None:
    log: list[str] = []
    with client(dropping(httpx.ReadTimeout, log)) as c, pytest.raises(CE.APITimeoutError):
        c.feedback("r1", "up")
    assert log == ["POST"]


async def test_the_async_client_makes_the_same_decisions() -> None:
    log: list[str] = []
    transport = httpx.MockTransport(dropping(httpx.ReadError, log))
    async with AsyncClient("http://llmeco.test", retry=FAST, transport=transport) as c:
        with pytest.raises(CE.APIConnectionError):
            await c.reload_model("m")
        with pytest.raises(CE.APIConnectionError):
            await c.forget_session("s1")
    assert log == ["POST", "DELETE", "DELETE", "DELETE"]


def test_tokenize_needs_exactly_one_of_prompt_and_messages() -> None:
    with client(lambda r: httpx.Response(200)) as c, pytest.raises(E.InvalidRequest):
        c.tokenize("m")
    with client(lambda r: httpx.Response(200)) as c, pytest.raises(E.InvalidRequest):
        c.tokenize("m", "hi", messages=[{"role": "user", "content": "hi"}])
