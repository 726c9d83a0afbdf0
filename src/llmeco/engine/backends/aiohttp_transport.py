"""An httpx transport over aiohttp: the gateway's upstream calls, at about two thirds the CPU.

The upstream client (:mod:`~llmeco.engine.backends.remote`) is written against httpx — its
``Response``, streaming, timeouts and exception tree, and ``MockTransport`` in the tests. On
the relay path httpx's own connection pool (httpcore over anyio) was the largest cost the
gateway added per request; aiohttp's C-accelerated HTTP parser and connection pool do the
same work for less (measured by ``benchmarks/gateway.py``). This transport keeps httpx as
the interface and lets aiohttp move the bytes, translating aiohttp's errors into the httpx
exceptions the retry and breaker logic already tells apart:

=============================================  =============================
aiohttp                                        httpx
=============================================  =============================
cannot connect (refused, DNS, TLS handshake)   ``ConnectError``
no connection within the connect/pool timeout  ``ConnectTimeout``
no bytes within the read timeout               ``ReadTimeout``
connection dropped, malformed response         ``RemoteProtocolError``
=============================================  =============================

Bodies come back as they arrive (``iter_any``), undecoded (httpx decodes
``content-encoding`` itself, as with its own transport), so server-sent events are relayed
event by event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request, *, connecting: bool) -> Iterator[None]:
    """Re-raise aiohttp's (and asyncio's timeout) errors as the matching httpx exception."""
    try:
        yield
    except (aiohttp.ConnectionTimeoutError, aiohttp.ServerTimeoutError) as exc:
        if connecting and isinstance(exc, aiohttp.ConnectionTimeoutError):
            raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from exc
        raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
    except TimeoutError as exc:
        kind = httpx.ConnectTimeout if connecting else httpx.ReadTimeout
        raise kind("timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientError as exc:
        if connecting and isinstance(exc, aiohttp.ClientOSError):
            raise httpx.ConnectError(str(exc), request=request) from exc
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc


class _ResponseStream(httpx.AsyncByteStream):
    """An aiohttp response body as httpx reads one: chunks as they arrive, errors mapped."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request, connecting=False):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=AiohttpTransport(...))``: one aiohttp session (created
    on first use, inside the running event loop) with a bounded connection pool."""

    def __init__(self, *, max_connections: int = 1024, keepalive_seconds: float = 5.0) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=self._keepalive_seconds
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return the response with its body still to be read."""
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        with _as_httpx_errors(request, connecting=True):
            response = await self._open().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            # Let aiohttp's transports finish closing before the loop moves on.
            await asyncio.sleep(0)
            self._session = None
