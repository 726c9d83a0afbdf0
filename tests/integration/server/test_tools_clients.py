"""Agent frameworks, unchanged, against a real server and the packaged default model: LangChain's
``ChatOpenAI`` (tool binding and structured output) and an OpenAI Agents SDK agent whose
answer needs its tool.

Slow: loads the model once (~5 s after its conversion) and generates on CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, Field
from server_helpers import LiveServer

from llmeco.engine.async_engine import AsyncEngine
from llmeco.server import build_app
from llmeco.settings import Settings

pytestmark = pytest.mark.slow

SECRET = "4271"


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(max_length=20, description="First name")
    age: int = Field(ge=0, le=120, description="Age in years")


@pytest.fixture(scope="module")
def engine(cached_home: Path, default_model_dir: Path) -> Iterator[AsyncEngine]:
    e = AsyncEngine.from_ref("default", Settings(home=cached_home))
    yield e
    asyncio.run(e.shutdown(timeout=1))


@pytest.fixture(scope="module")
def base_url(engine: AsyncEngine, cached_home: Path) -> Iterator[str]:
    name = engine.model_info.name
    app = build_app(Settings(home=cached_home), {name: engine}, aliases={"default": name})
    with LiveServer(app) as live:
        yield live.url + "/v1"


def chat(base_url: str):  # type: ignore[no-untyped-def]
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=base_url,
        api_key="unused",  # type: ignore[arg-type]
        model="default",
        temperature=0,
        max_tokens=80,  # type: ignore[call-arg]
        max_retries=0,
    )


def test_langchain_bind_tools_makes_a_call(base_url: str) -> None:
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather of a city."""
        return f"Sunny in {city}"

    llm = chat(base_url).bind_tools(
        [get_weather], tool_choice="required", parallel_tool_calls=False
    )
    message = llm.invoke("What is the weather like in Paris today?")
    [call] = message.tool_calls  # type: ignore[attr-defined]
    assert call["name"] == "get_weather"
    assert "Paris" in call["args"]["city"]
    assert call["id"].startswith("call_")
    # Running the tool with the call LangChain parsed works as-is.
    assert get_weather.invoke(call["args"]).startswith("Sunny in")


@pytest.mark.parametrize("method", [None, "json_schema", "function_calling"])
def test_langchain_structured_output(base_url: str, method: str | None) -> None:
    llm = chat(base_url)
    structured = (
        llm.with_structured_output(Person)
        if method is None
        else llm.with_structured_output(Person, method=method)  # type: ignore[arg-type]
    )
    person = structured.invoke("Alice is 31 years old and lives in Paris. Who is she?")
    assert isinstance(person, Person)


@pytest.mark.parametrize("streamed", [False, True])
def test_agents_sdk_agent_uses_its_tool(base_url: str, streamed: bool) -> None:
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    looked_up: list[str] = []

    @function_tool
    def get_secret_code(name: str) -> str:
        """Look up the secret code of a person."""
        looked_up.append(name)
        return f"The secret code is {SECRET}."

    async def run() -> str:
        client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
        agent = Agent(
            name="helper",
            instructions="Answer with the secret code the tool gives you.",
            model=OpenAIChatCompletionsModel(model="default", openai_client=client),
            tools=[get_secret_code],
            # The first step must call the tool; the SDK then resets tool_choice, so the
            # second step answers from the tool's result.
            model_settings=ModelSettings(
                tool_choice="required", parallel_tool_calls=False, temperature=0, max_tokens=80
            ),
        )
        question = "What is the secret code of Alice?"
        try:
            if streamed:
                run = Runner.run_streamed(agent, question, max_turns=3)
                async for _ in run.stream_events():
                    pass
                return str(run.final_output)
            result = await Runner.run(agent, question, max_turns=3)
        finally:
            await client.close()
        return str(result.final_output)

    answer = asyncio.run(run())
    assert len(looked_up) == 1, "the agent must run its tool once"
    assert SECRET in answer, answer
