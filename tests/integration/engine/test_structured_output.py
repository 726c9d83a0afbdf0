"""JSON mode and JSON schema through the real engine and the packaged model: always parseable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from llmeco.engine.async_engine import AsyncEngine
from llmeco.engine.request import ChatPrompt, SamplingParams, StructuredOutput
from llmeco.errors import InvalidRequest
from llmeco.settings import Settings

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "city": {"type": "string", "maxLength": 40},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine(default_model_dir: Path, cached_home: Path) -> AsyncEngine:
    return AsyncEngine.from_ref(str(default_model_dir), Settings(home=cached_home))


async def complete(engine: AsyncEngine, i: int, spec: StructuredOutput) -> tuple[str, str | None]:
    prompt = ChatPrompt(
        [
            {
                "role": "user",
                "content": f"Reply in JSON with the keys name, age and city for person number {i}.",
            }
        ]
    )
    params = SamplingParams(max_tokens=160, temperature=0.0, structured=spec)
    text, finish = "", None
    async for out in engine.generate(prompt, params, f"json-{spec.kind}-{i}"):
        for d in out.deltas:
            text += d.text
            finish = d.finish_reason or finish
    return text, finish


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["json_object", "json_schema"])
async def test_twenty_prompts_always_parse(engine: AsyncEngine, kind: str) -> None:
    spec = StructuredOutput(kind, SCHEMA if kind == "json_schema" else None)  # type: ignore[arg-type]
    results = await asyncio.gather(*(complete(engine, i, spec) for i in range(20)))
    for text, finish in results:
        assert finish == "stop", text
        value = json.loads(text)
        assert isinstance(value, dict)
        if kind == "json_schema":
            jsonschema.validate(value, SCHEMA)


async def test_invalid_schema_is_a_clear_error(engine: AsyncEngine) -> None:
    spec = StructuredOutput("json_schema", {"type": "no-such-type"})
    with pytest.raises(InvalidRequest) as err:
        await complete(engine, 0, spec)
    assert err.value.param == "response_format"
