"""The SSE relay: events pass byte for byte, the gateway's usage chunk and [DONE] do not."""

from __future__ import annotations

from llmeco.server.gateway.relay import SseRelay, choice_text, usage_of

CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n'
USAGE = (
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
)
DONE = b"data: [DONE]\n\n"


def feed_all(relay: SseRelay, data: bytes, size: int) -> bytes:
    out = b"".join(relay.feed(data[i : i + size]) for i in range(0, len(data), size))
    return out + relay.flush()


def test_events_pass_unchanged_across_any_chunking_and_usage_is_read() -> None:
    for size in (1, 7, 1000):
        relay = SseRelay(strip_usage=False)
        out = feed_all(relay, CHUNK + USAGE + DONE, size)
        assert out == CHUNK + USAGE
        assert relay.done == DONE
        assert relay.usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        assert relay.text() == "Hi"


def test_the_usage_chunk_is_stripped_when_the_client_did_not_ask() -> None:
    relay = SseRelay(strip_usage=True)
    assert feed_all(relay, CHUNK + USAGE + DONE, 5) == CHUNK
    assert relay.usage is not None and relay.usage["completion_tokens"] == 1


def test_crlf_events_of_llama_cpp_and_comments() -> None:
    crlf = CHUNK.replace(b"\n\n", b"\r\n\r\n")
    relay = SseRelay(strip_usage=True)
    out = feed_all(relay, b": ping\r\n\r\n" + crlf + b"data: [DONE]\r\n\r\n", 3)
    assert out == b": ping\r\n\r\n" + crlf
    assert relay.done == b"data: [DONE]\r\n\r\n" and relay.text() == "Hi"


def test_a_stream_cut_short_has_no_done() -> None:
    relay = SseRelay(strip_usage=True)
    assert feed_all(relay, CHUNK + b'data: {"choi', 4) == CHUNK + b'data: {"choi'
    assert relay.done is None and relay.usage is None


def test_text_and_usage_of_whole_responses() -> None:
    chat = {"choices": [{"message": {"content": "a"}}, {"message": {"content": "b"}}]}
    assert choice_text(chat) == "ab"
    assert choice_text({"choices": [{"text": "xyz"}]}) == "xyz"
    assert usage_of({"usage": {"prompt_tokens": 2, "total_tokens": 2}}) == {
        "prompt_tokens": 2,
        "total_tokens": 2,
    }
    assert usage_of({"usage": None}) is None and usage_of([1]) is None
