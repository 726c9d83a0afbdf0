""":class:`Client` and :class:`AsyncClient`: the same methods, sync and async.

Each method is an :class:`Endpoint` over a request builder of :mod:`._api`; the only code
each client has of its own is sending one request and sleeping between attempts.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

import anyio
import httpx

from llmeco.client import _api as api
from llmeco.client import _api_kb as api_kb
from llmeco.client._core import Attempts, Call, Done, RetryPolicy

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0


class Endpoint(Generic[P, T]):
    """A client method made from a request builder: on :class:`Client` it returns the
    parsed answer, on :class:`AsyncClient` a coroutine of it (same signature and doc)."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, obj: Client, owner: type[Any]) -> Callable[P, T]: ...

    @overload
    def __get__(
        self, obj: AsyncClient, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        if obj is None:
            return self
        return obj._bind(self.build)


class _Endpoints:
    """Every method of the API (see :data:`llmeco.client._api.ROUTES`)."""

    # admin: keys
    create_key = Endpoint(api.create_key)
    list_keys = Endpoint(api.list_keys)
    get_key = Endpoint(api.get_key)
    update_key = Endpoint(api.update_key)
    revoke_key = Endpoint(api.revoke_key)
    # usage
    admin_usage = Endpoint(api.admin_usage)
    usage = Endpoint(api.usage)
    # admin: serving
    list_aliases = Endpoint(api.list_aliases)
    set_alias = Endpoint(api.set_alias)
    list_served_models = Endpoint(api.list_served_models)
    reload_model = Endpoint(api.reload_model)
    forget_session = Endpoint(api.forget_session)
    list_handoffs = Endpoint(api.list_handoffs)
    # tasks
    translate = Endpoint(api.translate)
    summarize = Endpoint(api.summarize)
    correct = Endpoint(api.correct)
    classify = Endpoint(api.classify)
    sentiment = Endpoint(api.sentiment)
    moderate = Endpoint(api.moderate)
    extract = Endpoint(api.extract)
    # built-in apps
    write = Endpoint(api.write)
    feedback = Endpoint(api.feedback)
    voice = Endpoint(api.voice)
    # tokenizer
    tokenize = Endpoint(api.tokenize)
    detokenize = Endpoint(api.detokenize)
    # operations
    health = Endpoint(api.health)
    ready = Endpoint(api.ready)
    # knowledge bases
    list_kbs = Endpoint(api_kb.list_kbs)
    create_kb = Endpoint(api_kb.create_kb)
    get_kb = Endpoint(api_kb.get_kb)
    delete_kb = Endpoint(api_kb.delete_kb)
    upload_document = Endpoint(api_kb.upload_document)
    add_text = Endpoint(api_kb.add_text)
    remove_document = Endpoint(api_kb.remove_document)
    search_kb = Endpoint(api_kb.search_kb)
    # audit ledger
    audit_entries = Endpoint(api_kb.audit_entries)
    audit_verify = Endpoint(api_kb.audit_verify)
    audit_checkpoints = Endpoint(api_kb.audit_checkpoints)
    audit_sign_checkpoint = Endpoint(api_kb.audit_sign_checkpoint)
    audit_proof = Endpoint(api_kb.audit_proof)


def _settings(
    base_url: str | None,
    api_key: str | None,
    headers: Mapping[str, str] | None,
) -> tuple[str, dict[str, str]]:
    """The base URL and default headers, with ``LLMECO_BASE_URL``/``LLMECO_API_KEY`` from
    the environment when not given."""
    url = (base_url or os.environ.get("LLMECO_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    key = api_key if api_key is not None else os.environ.get("LLMECO_API_KEY")
    merged = {"User-Agent": "llmeco-client"}
    if key:
        merged["Authorization"] = f"Bearer {key}"
    merged.update(headers or {})
    return url, merged


class _Options:
    """What both clients are configured with."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
        retry: RetryPolicy | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.base_url, self.headers = _settings(base_url, api_key, headers)
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy(max_retries=max_retries)


class Client(_Endpoints):
    """A synchronous client of llmeco's own API (the OpenAI routes: use ``openai.OpenAI``).

    ``base_url`` is the server root (``http://host:8000``, not ``…/v1``; default
    ``$LLMECO_BASE_URL`` or ``http://127.0.0.1:8000``); ``api_key`` defaults to
    ``$LLMECO_API_KEY``. ``timeout`` (seconds) applies per attempt; ``max_retries`` (or a
    full :class:`~llmeco.client.RetryPolicy` as ``retry``) bounds retries on 429/503 and
    connection failures. ``transport`` replaces the network (e.g. ``httpx.MockTransport``).
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.options = _Options(base_url, api_key, timeout, max_retries, retry, headers)
        self._http = httpx.Client(
            base_url=self.options.base_url,
            headers=self.options.headers,
            timeout=timeout,
            transport=transport,
        )

    def _bind(self, build: Callable[P, Call[T]]) -> Callable[P, T]:
        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.request(build(*args, **kwargs))

        return method

    def request(self, call: Call[T]) -> T:
        """Send ``call``, retrying as the retry policy allows; its parsed answer."""
        attempts = Attempts(call, self.options.retry)
        while True:
            try:
                response = self._http.request(**call.request_kwargs())
            except httpx.TransportError as exc:
                wait = attempts.on_error(exc)
            else:
                outcome = attempts.on_response(response)
                if isinstance(outcome, Done):
                    return outcome.value
                wait = outcome
            time.sleep(wait)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_Endpoints):
    """The asynchronous twin of :class:`Client` (same methods, each awaited); runs on
    asyncio or trio. ``transport`` may be ``httpx.ASGITransport(app)`` to call an app in
    process."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = _Options(base_url, api_key, timeout, max_retries, retry, headers)
        self._http = httpx.AsyncClient(
            base_url=self.options.base_url,
            headers=self.options.headers,
            timeout=timeout,
            transport=transport,
        )

    def _bind(self, build: Callable[P, Call[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(build)
        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.request(build(*args, **kwargs))

        return method

    async def request(self, call: Call[T]) -> T:
        """Send ``call``, retrying as the retry policy allows; its parsed answer."""
        attempts = Attempts(call, self.options.retry)
        while True:
            try:
                response = await self._http.request(**call.request_kwargs())
            except httpx.TransportError as exc:
                wait = attempts.on_error(exc)
            else:
                outcome = attempts.on_response(response)
                if isinstance(outcome, Done):
                    return outcome.value
                wait = outcome
            await anyio.sleep(wait)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
