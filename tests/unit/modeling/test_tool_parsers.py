"""Tool parsers: whole outputs, and the same outputs fed in any pieces, give the same result."""

from __future__ import annotations

import random

import pytest

from llmeco.errors import ConfigError
from llmeco.modeling.tool_parsers import (
    TOOL_PARSERS,
    ToolCallDelta,
    get_tool_parser,
)

CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'

# (parser, output, expected content, expected [(name, arguments)])
CASES: list[tuple[str, str, str | None, list[tuple[str, str]]]] = [
    ("hermes", "Plain answer.\n", "Plain answer.\n", []),
    ("hermes", CALL, None, [("get_weather", '{"city": "Paris"}')]),
    ("hermes", "Let me check.\n\n" + CALL + "\n", "Let me check.",
     [("get_weather", '{"city": "Paris"}')]),
    ("hermes", CALL + "\n" + CALL.replace("Paris", "Rome"), None,
     [("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')]),
    # Braces and escaped quotes inside strings do not end the arguments.
    ("hermes", '<tool_call>{"name": "f", "arguments": {"q": "a } \\" ]", "n": [1, {"x": 2}]}}'
     "</tool_call>", None, [("f", '{"q": "a } \\" ]", "n": [1, {"x": 2}]}')]),
    # Keys in another order, no arguments, arguments as a JSON string, no closing tag.
    ("hermes", '<tool_call>{"arguments": {"a": 1}, "name": "f"}</tool_call>', None,
     [("f", '{"a": 1}')]),
    ("hermes", '<tool_call>{"name": "now"}</tool_call>', None, [("now", "{}")]),
    ("hermes", '<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>', None,
     [("f", '{"a": 1}')]),
    ("hermes", '<tool_call>{"name": "f", "arguments": {}} and then text', "and then text",
     [("f", "{}")]),
    # Things that look like a call but are not one stay content.
    ("hermes", "Wrap calls in <tool_call> tags.", "Wrap calls in <tool_call> tags.", []),
    ("hermes", '<tool_call>{"city": "Paris"}</tool_call>', '<tool_call>{"city": "Paris"}'
     "</tool_call>", []),
    ("hermes", "almost <tool_ca", "almost <tool_ca", []),
    ("hermes", "<tool_call>\n{\"na", "<tool_call>\n{\"na", []),
    # A call cut short keeps what it had; a broken call keeps the arguments up to the break.
    ("hermes", '<tool_call>\n{"name": "f", "arguments": {"a": "cu', None, [("f", '{"a": "cu')]),
    ("hermes", '<tool_call>{"name": "f", "arguments": {"a": 1]}}</tool_call> after', "after",
     [("f", '{"a": 1')]),
    ("llama3_json", '{"name": "get_weather", "parameters": {"city": "Paris"}}', None,
     [("get_weather", '{"city": "Paris"}')]),
    ("llama3_json", '<|python_tag|>{"name": "f", "arguments": {"a": 1}}; {"name": "g", '
     '"parameters": {}}', None, [("f", '{"a": 1}'), ("g", "{}")]),
    ("llama3_json", '{"name": "Bob", "age": 41}', '{"name": "Bob", "age": 41}', []),
    ("llama3_json", "The answer is {x}.", "The answer is {x}.", []),
    ("mistral", 'Checking. [TOOL_CALLS][{"name": "f", "arguments": {"a": 1}}, {"name": "g", '
     '"arguments": {}}]', "Checking.", [("f", '{"a": 1}'), ("g", "{}")]),
    ("mistral", "[TOOL_CALLS] is how I call tools.", "[TOOL_CALLS] is how I call tools.", []),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "content", "calls"), CASES)
def test_parse(name: str, text: str, content: str | None, calls: list[tuple[str, str]]) -> None:
    parsed = get_tool_parser(name).parse(text)
    assert parsed.content == content
    assert [(c.name, c.arguments) for c in parsed.calls] == calls
    assert all(c.id.startswith("call_") for c in parsed.calls)


def run_stream(name: str, pieces: list[str]) -> tuple[str, list[list[ToolCallDelta]]]:
    """Content and, per call, its deltas, from feeding ``pieces`` and finishing."""
    stream = get_tool_parser(name).stream()
    content = ""
    per_call: list[list[ToolCallDelta]] = []
    for step in [*(stream.feed(p) for p in pieces), stream.finish()]:
        content += step.content
        for d in step.calls:
            if d.name is not None:
                assert d.index == len(per_call)
                per_call.append([])
            per_call[d.index].append(d)
    return content, per_call


@pytest.mark.parametrize(("name", "text", "content", "calls"), CASES)
def test_any_split_streams_the_same(
    name: str, text: str, content: str | None, calls: list[tuple[str, str]]
) -> None:
    rng = random.Random(len(text))
    splits = [list(text), [text]]
    for _ in range(30):
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 8))))
        splits.append([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)])
    for pieces in splits:
        got_content, per_call = run_stream(name, pieces)
        assert (got_content or None) == content, pieces
        got = []
        for deltas in per_call:
            first, rest = deltas[0], deltas[1:]
            # The first delta opens the call (id, name, no arguments); the rest are fragments.
            assert first.id is not None and first.id.startswith("call_") and first.arguments == ""
            assert all(d.id is None and d.name is None and d.arguments for d in rest)
            got.append((first.name, "".join(d.arguments for d in rest)))
        assert got == calls, pieces


def test_arguments_stream_as_they_arrive() -> None:
    stream = get_tool_parser("hermes").stream()
    assert not stream.feed("<tool_call>\n{")
    opened = stream.feed('"name": "get_weather", "arguments": {"ci')
    assert [(d.index, d.name, d.arguments) for d in opened.calls] == [
        (0, "get_weather", ""),
        (0, None, '{"ci'),
    ]
    assert stream.feed('ty": "Par').calls == [ToolCallDelta(0, 'ty": "Par')]
    assert stream.feed('is"}}\n</tool_').calls == [ToolCallDelta(0, 'is"}')]
    assert not stream.feed("call>")
    assert [(c.name, c.arguments) for c in stream.calls] == [("get_weather", '{"city": "Paris"}')]


def test_content_is_held_only_while_it_may_be_a_marker() -> None:
    stream = get_tool_parser("hermes").stream()
    assert stream.feed("Hello <to").content == "Hello"
    assert stream.feed("day").content == " <today"
    assert stream.feed(" ").content == ""  # trailing space: held until text follows
    assert stream.finish().content == " "  # no call came, so it belongs to the answer


def test_registry() -> None:
    assert sorted(TOOL_PARSERS) == ["hermes", "llama3_json", "mistral"]
    assert get_tool_parser("").name == "hermes"
    assert get_tool_parser("mistral").keep_special_tokens
    with pytest.raises(ConfigError, match="hermes, llama3_json, mistral"):
        get_tool_parser("pythonic")
