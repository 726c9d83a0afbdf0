"""Function calling with the official ``openai`` client against a real server and the packaged
default model (SmolLM2-135M-Instruct, whose template has no tool support: it sees the Hermes
fallback of ``llmeco.modeling.chat`` and calls under the tool grammar).

Slow: loads the model once (~5 s after its conversion) and generates on CPU.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field
from server_helpers import LiveServer

from llmeco.engine.async_engine import AsyncEngine
from llmeco.server import build_app
from llmeco.settings import Settings

pytestmark = pytest.mark.slow

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 30}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather of a city.",
        "parameters": WEATHER_SCHEMA,
    },
}
ASK: Any = [{"role": "user", "content": "What is the weather like in Paris today?"}]


class GetWeather(BaseModel):
    """Get the current weather of a city."""

    city: str = Field(max_length=30, description="The city, e.g. Paris")


@pytest.fixture(scope="module")
def engine(cached_home: Path, default_model_dir: Path) -> Iterator[AsyncEngine]:
    e = AsyncEngine.from_ref("default", Settings(home=cached_home))
    yield e
    asyncio.run(e.shutdown(timeout=1))


@pytest.fixture(scope="module")
def client(engine: AsyncEngine, cached_home: Path) -> Iterator[openai.OpenAI]:
    name = engine.model_info.name
    app = build_app(Settings(home=cached_home), {name: engine}, aliases={"default": name})
    with LiveServer(app) as live:
        yield openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


def check_weather_call(call: Any) -> dict[str, Any]:
    """A well-formed get_weather call; returns its arguments."""
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    arguments: dict[str, Any] = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_SCHEMA)
    return arguments


def test_required_tool_call(client: openai.OpenAI) -> None:
    # One call: a 135M model never trained on tools, allowed parallel calls, repeats its call
    # until max_tokens (each one valid).
    r = client.chat.completions.create(
        model="default",
        messages=ASK,
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=60,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert "Paris" in check_weather_call(call)["city"]
    assert choice.message.content is None


def test_parallel_calls_are_each_valid(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="default",
        messages=ASK,
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
        max_tokens=100,
    )
    choice = r.choices[0]
    calls = choice.message.tool_calls or []
    complete = calls if choice.finish_reason == "tool_calls" else calls[:-1]  # last may be cut
    assert complete
    for call in complete:
        check_weather_call(call)


def test_named_tool_call_streamed_with_the_sdk_helper(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="default",
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=60,
    ) as stream:
        kinds = {type(event).__name__ for event in stream}
        final = stream.get_final_completion()
    assert "FunctionToolCallArgumentsDeltaEvent" in kinds
    assert "FunctionToolCallArgumentsDoneEvent" in kinds
    [call] = final.choices[0].message.tool_calls or []
    check_weather_call(call)
    assert final.choices[0].finish_reason == "tool_calls"


def stream_result(client: openai.OpenAI, **request: Any) -> tuple[str, list[tuple[str, str]], str]:
    """Content, (name, arguments) per call, and finish reason of a raw streamed response."""
    content, calls, finish = "", {}, ""
    for chunk in client.chat.completions.create(stream=True, **request):
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                if tc.id is not None:
                    calls[tc.index] = [tc.function.name, ""]  # type: ignore[union-attr]
                calls[tc.index][1] += tc.function.arguments or ""  # type: ignore[union-attr]
            finish = choice.finish_reason or finish
    return content, [(n, a) for n, a in (calls[i] for i in sorted(calls))], finish


@pytest.mark.parametrize("tool_choice", ["required", "auto"])
def test_streamed_equals_non_streamed_at_temperature_zero(
    client: openai.OpenAI, tool_choice: str
) -> None:
    request: dict[str, Any] = {
        "model": "default",
        "messages": ASK,
        "tools": [WEATHER],
        "tool_choice": tool_choice,
        "temperature": 0,
        "max_tokens": 60,
    }
    plain = client.chat.completions.create(**request).choices[0]
    content, calls, finish = stream_result(client, **request)
    assert finish == plain.finish_reason
    assert (content or None) == (plain.message.content or None)
    assert calls == [
        (c.function.name, c.function.arguments) for c in plain.message.tool_calls or []
    ]


def test_parse_with_a_pydantic_function_tool(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="default",
        messages=ASK,
        tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=60,
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "GetWeather"
    assert isinstance(call.function.parsed_arguments, GetWeather)
    assert "Paris" in call.function.parsed_arguments.city


def test_two_turns_feed_the_tool_result_back(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="default",
        messages=ASK,
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=60,
    ).choices[0]
    [call] = first.message.tool_calls or []
    check_weather_call(call)
    history: Any = [
        *ASK,
        first.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny and 24 degrees Celsius."},
    ]
    second = client.chat.completions.create(
        model="default", messages=history, tools=[WEATHER], temperature=0, max_tokens=60
    ).choices[0]
    assert second.finish_reason == "stop"
    assert not second.message.tool_calls
    assert second.message.content and second.message.content.strip()


def test_bad_tool_schema_is_a_400_naming_the_tool(client: openai.OpenAI) -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}
    with pytest.raises(openai.BadRequestError, match="tool 'f'") as info:
        client.chat.completions.create(model="default", messages=ASK, tools=[bad])
    assert info.value.body["param"] == "tools[0].function.parameters"  # type: ignore[index]
