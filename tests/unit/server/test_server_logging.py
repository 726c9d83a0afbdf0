"""JSON logs carry the request id on every line logged while a request is served."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from llmeco.observability.logging import JsonFormatter, request_id_var, sanitize_request_id


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("llmeco")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


async def test_access_line_is_json_with_request_id_and_user(
    client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "user": "u-7"}
    await client.post("/v1/chat/completions", json=body, headers={"x-request-id": "log-1"})
    entries = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    (access,) = [e for e in entries if e["logger"] == "llmeco.server.access"]
    assert access["request_id"] == "log-1"
    assert access["msg"] == "POST /v1/chat/completions 200"
    assert access["status"] == 200 and access["model"] == "fake-model"
    assert access["user"] == "u-7" and access["level"] == "info"
    assert access["ts"].endswith("Z")


async def test_bug_is_logged_with_request_id(
    client: httpx.AsyncClient, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fake_engine import FakeEngine

    def boom(self: FakeEngine, prompt: object) -> list[int]:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(FakeEngine, "encode", boom)
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "x"}]}
    r = await client.post("/v1/chat/completions", json=body, headers={"x-request-id": "bug-9"})
    assert r.status_code == 500
    entries = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    (error,) = [e for e in entries if e["level"] == "error"]
    assert error["request_id"] == "bug-9" and "kaboom" in error["exc"]


def test_formatter_outside_requests_and_sanitising() -> None:
    record = logging.makeLogRecord({"msg": "hello %s", "args": ("world",), "name": "x"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "hello world" and "request_id" not in entry
    token = request_id_var.set("abc")
    try:
        assert json.loads(JsonFormatter().format(record))["request_id"] == "abc"
    finally:
        request_id_var.reset(token)
    assert sanitize_request_id("a b:c/d") == "abcd"
    assert len(sanitize_request_id("!!!")) == 32
    assert len(sanitize_request_id("z" * 500)) == 128
