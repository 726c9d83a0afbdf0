"""The upstream client's retry policy, timeouts, fallbacks and probes over httpx's
MockTransport (the network is not the point here; the integration tests use real servers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from llmeco.engine.backends.remote import RetryPolicy, UpstreamModel, UpstreamSet
from llmeco.engine.backends.routing import BreakerState
from llmeco.engine.backends.upstream_config import UpstreamsConfig, UpstreamSpec
from llmeco.errors import UpstreamError, UpstreamTimeout

Handler = Callable[[httpx.Request], httpx.Response]


class Broken(httpx.AsyncByteStream):
    """A body that sends ``chunks`` and then fails like a killed server (or ends, when
    ``ok``)."""

    def __init__(self, *chunks: bytes, ok: bool = False) -> None:
        self.chunks = chunks
        self.ok = ok

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if not self.ok:
            raise httpx.RemoteProtocolError("peer closed connection without complete body")


class Recorder:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.hosts: list[str] = []
        self.delays: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.url.host)
        return self.handler(request)

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def model(
    rec: Recorder, urls: tuple[str, ...] = ("http://a/v1", "http://b/v1"), **kw: object
) -> UpstreamModel:
    spec = UpstreamSpec(name="m", urls=list(urls), **kw)  # type: ignore[arg-type]
    client = httpx.AsyncClient(transport=httpx.MockTransport(rec))
    return UpstreamModel(spec, client, sleep=rec.sleep)


def test_retry_policy_backs_off_exponentially_and_retries_only_gateway_statuses() -> None:
    policy = RetryPolicy(retries=5, backoff=0.1, max_delay=0.5)
    assert [policy.delay(i) for i in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]
    assert [s for s in (400, 404, 429, 500, 502, 503, 504) if policy.retriable_status(s)] == [
        502,
        503,
        504,
    ]
    assert policy.retriable_error(httpx.ConnectError("refused"))
    assert not policy.retriable_error(httpx.ReadTimeout("slow"))


async def test_connection_error_is_retried_on_the_other_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200, json={"id": "x", "usage": {"prompt_tokens": 1}})

    rec = Recorder(handler)
    m = model(rec)
    m.pool.endpoints[1].outstanding = 1  # a is picked first
    reply = await m.send("/chat/completions", {"model": "m"}, stream=False)
    assert reply.status == 200 and reply.url == "http://b/v1"
    assert rec.hosts == ["a", "b"] and rec.delays == [0.1]
    a = m.pool.endpoints[0]
    assert a.failures == 1 and a.outstanding == 0


async def test_503_is_retried_and_4xx_is_handed_back_unretried() -> None:
    statuses = iter([503, 400])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses), json={"error": {"message": "bad"}})

    rec = Recorder(handler)
    reply = await model(rec).send("/completions", {"model": "m"}, stream=False)
    assert reply.status == 400 and reply.json() == {"error": {"message": "bad"}}
    assert len(rec.hosts) == 2


async def test_every_attempt_failing_raises_upstream_error_after_retries() -> None:
    rec = Recorder(lambda r: httpx.Response(502, text="bad gateway"))
    m = model(rec, retries=3)
    with pytest.raises(UpstreamError, match="502"):
        await m.send("/completions", {"model": "m"}, stream=False)
    assert len(rec.hosts) == 4 and rec.delays == [0.1, 0.2, 0.4]


async def test_read_timeout_is_our_504_and_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    rec = Recorder(handler)
    with pytest.raises(UpstreamTimeout, match=r"within 1\.5 s"):
        await model(rec, timeout=1.5).send("/completions", {"model": "m"}, stream=False)
    assert len(rec.hosts) == 1


async def test_a_body_cut_before_the_client_saw_a_byte_is_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            return httpx.Response(200, stream=Broken(b'{"id": "x", '))
        return httpx.Response(200, json={"id": "y"})

    rec = Recorder(handler)
    m = model(rec)
    m.pool.endpoints[1].outstanding = 1
    reply = await m.send("/completions", {"model": "m"}, stream=False)
    assert reply.json() == {"id": "y"} and rec.hosts == ["a", "b"]


async def test_stream_failing_before_its_first_byte_is_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            return httpx.Response(200, stream=Broken())
        return httpx.Response(200, stream=Broken(b"data: 1\n\n", b"data: [DONE]\n\n", ok=True))

    rec = Recorder(handler)
    m = model(rec)
    m.pool.endpoints[1].outstanding = 1
    reply = await m.send("/completions", {"model": "m", "stream": True}, stream=True)
    assert reply.chunks is not None
    body = reply.body + b"".join([c async for c in reply.chunks])
    await reply.aclose()
    assert body == b"data: 1\n\ndata: [DONE]\n\n" and rec.hosts == ["a", "b"]
    assert [e.outstanding for e in m.pool.endpoints] == [0, 1]  # b's 1 was the test's


async def test_stream_breaking_after_its_first_byte_is_not_retried() -> None:
    rec = Recorder(lambda r: httpx.Response(200, stream=Broken(b"data: 1\n\n", b"data: 2\n\n")))
    m = model(rec)
    reply = await m.send("/completions", {"model": "m", "stream": True}, stream=True)
    assert reply.body == b"data: 1\n\n" and reply.chunks is not None
    got = []
    with pytest.raises(UpstreamError, match="after the stream started"):
        async for chunk in reply.chunks:
            got.append(chunk)
    await reply.aclose()
    assert got == [b"data: 2\n\n"]
    assert len(rec.hosts) == 1  # no second attempt once bytes went out
    endpoint = next(e for e in m.pool.endpoints if e.url == reply.url)
    assert endpoint.failures == 1 and endpoint.outstanding == 0


async def test_sent_body_names_the_upstream_model_and_carries_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "sk-upstream")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    rec = Recorder(handler)
    m = model(rec, urls=("http://a/v1",), model="remote-name", api_key_env="UPSTREAM_KEY")
    await m.send("/chat/completions", {"model": "m", "n": 2}, stream=False, request_id="r1")
    assert seen[0].url == "http://a/v1/chat/completions"
    assert seen[0].read() == b'{"model":"remote-name","n":2}'
    assert seen[0].headers["authorization"] == "Bearer sk-upstream"
    assert seen[0].headers["x-request-id"] == "r1"


async def test_fallback_answers_when_every_url_fails_and_disallowed_fallbacks_are_skipped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host in ("p1", "p2"):
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"from": request.url.host})

    config = UpstreamsConfig(
        upstreams=[
            UpstreamSpec(
                name="primary", urls=["http://p1/v1", "http://p2/v1"], fallbacks=["f1", "f2"]
            ),
            UpstreamSpec(name="f1", urls=["http://f1/v1"]),
            UpstreamSpec(name="f2", urls=["http://f2/v1"]),
        ]
    )
    rec = Recorder(handler)
    client = httpx.AsyncClient(transport=httpx.MockTransport(rec))
    upstreams = UpstreamSet(config, client=client, sleep=rec.sleep)
    reply = await upstreams.send("primary", "/completions", {"model": "primary"}, stream=False)
    assert reply.json() == {"from": "f1"} and reply.upstream == "f1"
    reply = await upstreams.send(
        "primary", "/completions", {}, stream=False, allowed=lambda name: name != "f1"
    )
    assert reply.json() == {"from": "f2"}
    with pytest.raises(UpstreamError, match="primary"):
        await upstreams.send("primary", "/completions", {}, stream=False, allowed=lambda n: False)


async def test_probe_readmits_an_ejected_url_and_learns_the_context_length() -> None:
    up = {"ok": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if not up["ok"]:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 2048}]})

    now = [0.0]
    spec = UpstreamSpec(name="m", urls=["http://a/v1"], failure_threshold=1, cooldown=5)
    rec = Recorder(handler)
    config = UpstreamsConfig(upstreams=[spec])
    client = httpx.AsyncClient(transport=httpx.MockTransport(rec))
    upstreams = UpstreamSet(config, client=client, clock=lambda: now[0], sleep=rec.sleep)
    m = upstreams.models["m"]
    with pytest.raises(UpstreamError):
        await m.send("/completions", {}, stream=False)
    (a,) = m.pool.endpoints
    assert a.breaker.state is BreakerState.OPEN
    with pytest.raises(UpstreamError, match="ejected"):
        await m.send("/completions", {}, stream=False)
    now[0] = 5.0
    await upstreams.probe_due()  # still down: open again for a cool-down
    assert a.breaker.state is BreakerState.OPEN
    up["ok"] = True
    now[0] = 10.0
    await upstreams.probe_due()
    assert a.breaker.state is BreakerState.CLOSED and m.max_model_len == 2048
