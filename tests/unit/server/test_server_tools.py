"""Function calling on /v1/chat/completions over the fake engine: shapes, streams, legacy
``functions``, the grammar the engine is asked for, and every bad input as a 400."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fake_engine import FakeEngine
from server_helpers import assert_openai_error, sse_events

from llmeco.engine.request import SamplingParams, ToolCallSpec

URL = "/v1/chat/completions"
ASK = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
TWO_CALLS = CALL + '\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'


@pytest.fixture(autouse=True)
def _long_context(fake: FakeEngine) -> None:
    fake.max_model_len = 4096


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": ASK, "max_tokens": 400, **extra}


def spec(fake: FakeEngine) -> ToolCallSpec | None:
    """The tool-call grammar the last request asked the engine for."""
    params: SamplingParams = fake.params[-1]
    return None if params.structured is None else params.structured.tool_calls


async def test_a_call_comes_back_as_tool_calls(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    fake.reply = CALL
    r = await client.post(URL, json=body(tools=[WEATHER]))
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None and "function_call" not in message
    [call] = message["tool_calls"]
    assert call["id"].startswith("call_") and len(call["id"]) == 29
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    # The tools were rendered into the prompt, and auto is constrained by the tool grammar.
    assert fake.prompts[-1].startswith("tools: get_weather\n")
    assert spec(fake) == ToolCallSpec(
        "hermes", (("get_weather", WEATHER["function"]["parameters"]),), required=False
    )


async def test_text_and_several_calls(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    fake.reply = "Let me look.\n" + TWO_CALLS
    r = await client.post(URL, json=body(tools=[WEATHER, TIME]))
    message = r.json()["choices"][0]["message"]
    assert message["content"] == "Let me look."
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather", "get_time"]
    assert message["tool_calls"][1]["function"]["arguments"] == "{}"
    assert len({c["id"] for c in message["tool_calls"]}) == 2


async def test_a_text_answer_is_unchanged(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    fake.reply = "It is sunny.\n"
    r = await client.post(URL, json=body(tools=[WEATHER]))
    choice = r.json()["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "It is sunny.\n", "refusal": None}
    assert choice["finish_reason"] == "stop"


async def test_a_call_cut_by_max_tokens_finishes_with_length(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = CALL
    r = await client.post(URL, json=body(tools=[WEATHER], max_tokens=60))
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def collect_stream(events: list[Any]) -> dict[int, dict[str, Any]]:
    """Per choice: the content, the calls (by index) and the finish reason of a stream,
    checking each delta has OpenAI's shape."""
    out: dict[int, dict[str, Any]] = {}
    for event in events[:-1]:
        for choice in event["choices"]:
            acc = out.setdefault(choice["index"], {"content": "", "calls": {}, "finish": None})
            delta = choice["delta"]
            acc["content"] += delta.get("content") or ""
            for tc in delta.get("tool_calls", []):
                assert len(delta["tool_calls"]) == 1 and set(delta) == {"tool_calls"}
                if "id" in tc:  # the first delta of a call
                    assert tc["index"] not in acc["calls"]
                    assert tc["type"] == "function" and tc["function"]["arguments"] == ""
                    acc["calls"][tc["index"]] = {"id": tc["id"], **tc["function"]}
                else:
                    assert set(tc) == {"index", "function"} and set(tc["function"]) == {"arguments"}
                    acc["calls"][tc["index"]]["arguments"] += tc["function"]["arguments"]
            acc["finish"] = choice["finish_reason"] or acc["finish"]
    return out


async def test_streamed_calls_add_up_to_the_plain_response(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = "Let me look.\n" + TWO_CALLS
    plain = (await client.post(URL, json=body(tools=[WEATHER, TIME], n=2))).json()
    r = await client.post(URL, json=body(tools=[WEATHER, TIME], n=2, stream=True))
    events = sse_events(r.text)
    streamed = collect_stream(events)
    assert sorted(streamed) == [0, 1]
    for choice in plain["choices"]:
        got = streamed[choice["index"]]
        message = choice["message"]
        assert got["content"] == message["content"]
        assert got["finish"] == choice["finish_reason"] == "tool_calls"
        calls = [got["calls"][i] for i in sorted(got["calls"])]
        assert [{k: c[k] for k in ("name", "arguments")} for c in calls] == [
            c["function"] for c in message["tool_calls"]
        ]
        assert all(c["id"].startswith("call_") for c in calls)
    # Arguments arrive in fragments (one character per fake step), after the call opened.
    fragments = [
        e for e in events[:-1] if e["choices"] and "tool_calls" in e["choices"][0]["delta"]
    ]
    assert len(fragments) > 10


async def test_stream_without_calls_is_plain_content(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = "No tools needed <tool_call> here."
    r = await client.post(URL, json=body(tools=[WEATHER], stream=True))
    got = collect_stream(sse_events(r.text))[0]
    assert got == {"content": fake.reply, "calls": {}, "finish": "stop"}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, ToolCallSpec("hermes", (), required=False, parallel=True)),
        ("required", None, ToolCallSpec("hermes", (), required=True, parallel=True)),
        ("required", False, ToolCallSpec("hermes", (), required=True, parallel=False)),
        (
            {"type": "function", "function": {"name": "get_time"}},
            None,
            ToolCallSpec("hermes", (), required=True, parallel=False),
        ),
    ],
)
async def test_tool_choice_sets_the_grammar(
    client: httpx.AsyncClient,
    fake: FakeEngine,
    choice: Any,
    parallel: bool | None,
    expected: ToolCallSpec,
) -> None:
    extra = {} if parallel is None else {"parallel_tool_calls": parallel}
    r = await client.post(URL, json=body(tools=[WEATHER, TIME], tool_choice=choice, **extra))
    assert r.status_code == 200, r.text
    got = spec(fake)
    assert got is not None
    assert (got.format, got.required, got.parallel) == (
        expected.format,
        expected.required,
        expected.parallel,
    )
    names = [name for name, _ in got.tools]
    assert names == (["get_time"] if isinstance(choice, dict) else ["get_weather", "get_time"])


async def test_tool_choice_none_renders_and_parses_nothing(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = CALL
    r = await client.post(URL, json=body(tools=[WEATHER], tool_choice="none"))
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == CALL and "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    assert not fake.prompts[-1].startswith("tools:")
    assert fake.params[-1].structured is None


@pytest.mark.parametrize("where", ["request", "settings"])
async def test_grammar_off_still_parses(
    client: httpx.AsyncClient, fake: FakeEngine, app: Any, where: str
) -> None:
    fake.reply = CALL
    if where == "settings":
        app.state.llmeco.settings.tool_grammar = "off"
        extra: dict[str, Any] = {}
    else:
        extra = {"tool_grammar": "off"}
    r = await client.post(URL, json=body(tools=[WEATHER], tool_choice="required", **extra))
    assert r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert fake.params[-1].structured is None


async def test_response_format_constrains_the_text_alternative(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    await client.post(URL, json=body(tools=[WEATHER], response_format=fmt))
    got = spec(fake)
    assert got is not None and got.content_schema == schema and not got.required


async def test_tool_parser_setting_picks_the_format(
    client: httpx.AsyncClient, fake: FakeEngine, app: Any
) -> None:
    app.state.llmeco.settings.tool_parser = "mistral"
    fake.reply = '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Rome"}}]'
    r = await client.post(URL, json=body(tools=[WEATHER]))
    call = r.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["arguments"] == '{"city": "Rome"}'
    got = spec(fake)
    assert got is not None and got.format == "mistral"
    assert fake.params[-1].skip_special_tokens is False  # [TOOL_CALLS] is a special token


async def test_history_with_calls_and_results_is_rendered(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.reply = "It is 18 degrees in Paris."
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
    ]
    r = await client.post(URL, json=body(messages=messages, tools=[WEATHER]))
    assert r.json()["choices"][0]["message"]["content"] == fake.reply
    assert fake.prompts[-1].splitlines()[2:] == [
        'assistant:  [call call_1 get_weather {"city": "Paris"}]',
        "tool: 18 C [answers call_1]",
        "assistant: ",
    ]


async def test_legacy_functions(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    fake.reply = CALL
    functions = [WEATHER["function"], TIME["function"]]
    r = await client.post(URL, json=body(functions=functions))
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert "tool_calls" not in choice["message"]
    got = spec(fake)
    assert got is not None and not got.parallel
    await client.post(URL, json=body(functions=functions, function_call={"name": "get_time"}))
    got = spec(fake)
    assert got is not None and got.required and [n for n, _ in got.tools] == ["get_time"]
    await client.post(URL, json=body(functions=functions, function_call="none"))
    assert fake.params[-1].structured is None


async def test_legacy_functions_stream(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    fake.reply = CALL
    r = await client.post(URL, json=body(functions=[WEATHER["function"]], stream=True))
    events = sse_events(r.text)[:-1]
    deltas = [
        e["choices"][0]["delta"] for e in events if "function_call" in e["choices"][0]["delta"]
    ]
    assert deltas[0] == {"function_call": {"name": "get_weather", "arguments": ""}}
    assert "".join(d["function_call"]["arguments"] for d in deltas[1:]) == '{"city": "Paris"}'
    assert events[-1]["choices"][0]["finish_reason"] == "function_call"


async def test_legacy_function_messages(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    messages = [
        *ASK,
        {"role": "assistant", "function_call": {"name": "get_weather", "arguments": "{}"}},
        {"role": "function", "name": "get_weather", "content": "sunny"},
    ]
    r = await client.post(URL, json=body(messages=messages, functions=[WEATHER["function"]]))
    assert r.status_code == 200, r.text
    assert "tool: sunny [answers call_legacy_1]" in fake.prompts[-1]


def _tools(*tools: dict[str, Any]) -> list[dict[str, Any]]:
    return list(tools)


def _weather_with(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "get_weather", "parameters": parameters}}


# (id, extra request fields, param, a substring of the message)
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown-type", {"tools": [_weather_with({"type": "foo"})]},
     "tools[0].function.parameters", "type 'object'"),
    ("nested-unknown-type",
     {"tools": [_weather_with({"type": "object", "properties": {"a": {"type": "foo"}}})]},
     "tools[0].function.parameters", "tool 'get_weather': invalid JSON schema"),
    ("required-not-a-list", {"tools": [TIME, _weather_with({"type": "object", "required": "x"})]},
     "tools[1].function.parameters", "required"),
    ("bad-pattern",
     {"tools": [_weather_with({"properties": {"a": {"type": "string", "pattern": "("}}})]},
     "tools[0].function.parameters", "regex"),
    ("dangling-ref", {"tools": [_weather_with({"$ref": "#/$defs/nope"})]},
     "tools[0].function.parameters", "nope"),
    ("not-an-object-schema", {"tools": [_weather_with({"type": "string"})]},
     "tools[0].function.parameters", "type 'object'"),
    ("duplicate-names", {"tools": [WEATHER, TIME, WEATHER]}, "tools[2].function.name",
     "duplicate"),
    ("bad-name", {"tools": [{"type": "function", "function": {"name": "get weather!"}}]},
     "tools[0].function.name", "pattern"),
    ("not-a-function", {"tools": [{"type": "retrieval", "function": {"name": "f"}}]},
     "tools[0].type", ""),
    ("unknown-choice", {"tools": [WEATHER], "tool_choice": {"type": "function",
                                                            "function": {"name": "nope"}}},
     "tool_choice", "'nope'"),
    ("required-without-tools", {"tool_choice": "required"}, "tool_choice", "needs tools"),
    ("named-without-tools", {"tool_choice": {"type": "function", "function": {"name": "f"}}},
     "tool_choice", "needs tools"),
    ("bad-choice-string", {"tools": [WEATHER], "tool_choice": "always"}, "tool_choice", ""),
    ("parallel-without-tools", {"parallel_tool_calls": True}, "parallel_tool_calls", ""),
    ("tools-and-functions", {"tools": [WEATHER], "functions": [TIME["function"]]}, "functions",
     ""),
    ("function-call-with-tools", {"tools": [WEATHER], "function_call": "auto"}, "function_call",
     ""),
    ("unknown-legacy-function", {"functions": [TIME["function"]],
                                 "function_call": {"name": "nope"}}, "function_call", "'nope'"),
    ("tool-message-without-id", {"messages": [*ASK, {"role": "tool", "content": "x"}]},
     "messages[1].tool_call_id", "tool_call_id"),
    ("tool-message-unknown-id",
     {"messages": [*ASK, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]},
     "messages[1].tool_call_id", "call_9"),
    ("tool-answer-before-the-call",
     {"messages": [
         {"role": "tool", "tool_call_id": "call_1", "content": "x"},
         {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                               "function": {"name": "f", "arguments": "{}"}}]},
     ]},
     "messages[0].tool_call_id", "call_1"),
    ("calls-on-a-user-message",
     {"messages": [{"role": "user", "content": "x", "tool_calls": [
         {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
     "messages[0].tool_calls", "assistant"),
    ("function-message-without-call",
     {"messages": [*ASK, {"role": "function", "name": "f", "content": "x"}]},
     "messages[1].name", "function_call"),
    ("arguments-not-a-string",
     {"messages": [*ASK, {"role": "assistant", "tool_calls": [
         {"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}]}]},
     "messages[1].tool_calls[0].function.arguments", ""),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "param", "text"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_tool_input_is_a_400(
    client: httpx.AsyncClient,
    fake: FakeEngine,
    extra: dict[str, Any],
    param: str,
    text: str,
) -> None:
    r = await client.post(URL, json=body(**extra))
    error = assert_openai_error(r, 400)
    assert error["param"] == param, error
    assert text in error["message"], error
    assert fake.requests == []


async def test_error_json_is_openai_shaped_for_a_schema_error(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, json=body(tools=[_weather_with({"type": "foo"})]))
    assert json.loads(r.text)["error"]["type"] == "invalid_request_error"


async def test_tokenize_counts_the_tools_and_the_tool_turns(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    messages = [*ASK, {"role": "tool", "tool_call_id": "call_1", "content": "x"}]
    r = await client.post("/tokenize", json={"model": "fake-model", "messages": ASK})
    r_tools = await client.post(
        "/tokenize", json={"model": "fake-model", "messages": ASK, "tools": [WEATHER]}
    )
    assert r_tools.json()["count"] == r.json()["count"] + len("tools: get_weather\n")
    r = await client.post("/tokenize", json={"model": "fake-model", "messages": messages})
    assert assert_openai_error(r, 400)["param"] == "messages[1].tool_call_id"
