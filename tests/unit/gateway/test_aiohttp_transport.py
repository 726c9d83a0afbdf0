"""The aiohttp transport behind the gateway's httpx client: bytes through unchanged and
aiohttp's failures raised as the httpx exceptions the retry and breaker logic expects.
Each case runs a real socket server on loopback (refusing, hanging, or cutting a body)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import httpx
import pytest

from llmeco.engine.backends.aiohttp_transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


async def _server(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _client(timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AiohttpTransport(), timeout=timeout)


@pytest.mark.asyncio
async def test_request_and_streamed_response_pass_unchanged() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nx-upstream: yes\r\n\r\n"
        )
        for event in (b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server, url = await _server(handler)
    async with server, await _client() as client:
        chunks: list[bytes] = []
        async with client.stream(
            "POST", url + "/v1/x", json={"a": 1}, headers={"Authorization": "Bearer k"}
        ) as r:
            assert r.status_code == 200 and r.headers["x-upstream"] == "yes"
            async for chunk in r.aiter_raw():
                chunks.append(chunk)
    assert b"".join(chunks) == b"data: one\n\ndata: two\n\ndata: [DONE]\n\n"
    assert len(chunks) >= 2  # events arrive as sent, not buffered to the end
    request = seen[0]
    assert request.startswith(b"POST /v1/x HTTP/1.1\r\n")
    assert b"authorization: bearer k" in request.lower()
    assert request.endswith(b'{"a":1}')


@pytest.mark.asyncio
async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        async with await _client() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/health")


@pytest.mark.asyncio
async def test_silent_upstream_is_a_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)
        writer.close()

    server, url = await _server(handler)
    async with server, await _client(timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url + "/slow")


@pytest.mark.asyncio
async def test_body_cut_short_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    server, url = await _server(handler)
    async with server, await _client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url + "/cut")
