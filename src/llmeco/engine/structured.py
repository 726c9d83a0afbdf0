"""Constrained decoding: token masks that make ``response_format`` JSON always parse.

``response_format: {"type": "json_object"}`` and ``{"type": "json_schema", ...}`` are served by
masking the logits at every step so the model can only pick tokens that keep the text a valid
prefix of the grammar, as vLLM does. Retrying until the output happens to parse is never needed,
and the output can never fail to parse. When the JSON is complete the mask allows only EOS.
Tool calls (``kind="tool_calls"``) go through the same matchers: their grammar is the Lark
text :func:`llmeco.engine.tool_grammar.tool_call_lark` builds from the request's tools.

Library choice: **llguidance** (the Rust core of guidance, one ``abi3`` wheel, no Python
dependencies). xgrammar was evaluated too, but its wheel requires ``triton`` (and
``apache-tvm-ffi``), which pulls in a GPU toolchain and is a risk for the pinned CPU torch.
llguidance needs no torch at all: it reads the Hugging Face fast tokenizer's JSON
(``llguidance.hf.from_tokenizer``; byte-fallback ``<0xNN>`` tokens included), compiles a JSON
schema to an Earley parser plus lazy lexer in well under a millisecond for typical schemas,
computes a bit mask in tens of microseconds, fills masks for a batch on its own threads
(``LLExecutor``), and reports schema errors as readable messages (``"Invalid type: foo"``).
We do not import ``llguidance.torch``: its helper is wrapped in ``torch.compile``, which costs a
compile (and a C compiler) on CPU; we unpack the bits ourselves (``numpy.unpackbits`` on CPU,
shifts on a GPU).

Whitespace: by default the grammar is *compact*: no free whitespace anywhere, and the
separators are fixed to ``", "`` and ``": "`` (what ``json.dumps`` writes). Small models given
free whitespace tend to emit newline after newline and never finish; a compact grammar means
every token advances the JSON. ``whitespace_pattern`` can allow a bounded run instead.

How the engine uses it::

    compiler = StructuredOutputCompiler(tokenizer, vocab_size=logits.shape[-1])   # once per model
    m = compiler.matcher(params.structured, eos_token_ids)                        # per sequence
    # each step, one sequence:                    # or a whole batch at once:
    logits[~m.allowed_mask()] = -inf               bitmask = allocate_bitmask(batch, vocab_size)
    m.accept(sampled_token)                        fill_bitmask([m0, None, m2], bitmask)
                                                   apply_bitmask_(logits, bitmask)
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import llguidance
import llguidance.hf
import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

from llmeco.engine.tool_grammar import tool_call_lark
from llmeco.errors import GenerateError, InvalidRequest

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions
    from transformers import PreTrainedTokenizerBase

    from llmeco.engine.request import StructuredOutput

__all__ = [
    "GrammarMatcher",
    "StructuredOutputCompiler",
    "allocate_bitmask",
    "apply_bitmask_",
    "bitmask_to_bool",
    "fill_bitmask",
]

#: The grammar of ``{"type": "json_object"}``: any JSON value whose top level is an object.
JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}

#: Per-bit shifts used to unpack an int32 bit mask into booleans (bit ``j`` of word ``w`` is
#: token ``32 * w + j``, the layout llguidance writes).
_BIT_SHIFTS = torch.arange(32, dtype=torch.int32)


def allocate_bitmask(batch_size: int, vocab_size: int) -> torch.Tensor:
    """A CPU int32 tensor ``[batch_size, ceil(vocab_size / 32)]`` with every token allowed.

    Allocate it once at the engine's largest batch and pass row slices or the whole tensor to
    :func:`fill_bitmask`; rows of unconstrained sequences stay all ones (``-1``).
    """
    return torch.full((batch_size, (vocab_size + 31) // 32), -1, dtype=torch.int32)


def bitmask_to_bool(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Unpack int32 bit masks ``[..., words]`` to bools ``[..., vocab_size]``, True = allowed.

    On CPU this is ``numpy.unpackbits`` over the little-endian bytes (about 4 µs for one
    49k-token row); elsewhere (a mask already on the GPU) shifts and ands on the device.
    """
    if bitmask.device.type == "cpu":
        packed = bitmask.contiguous().numpy().view(np.uint8)
        unpacked = np.unpackbits(packed, axis=-1, bitorder="little")[..., :vocab_size]
        return torch.from_numpy(unpacked.view(np.bool_))
    return _unpack_on_device(bitmask, vocab_size)


def _unpack_on_device(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """:func:`bitmask_to_bool` with tensor ops only, for a mask on an accelerator."""
    bits = (bitmask.unsqueeze(-1) >> _BIT_SHIFTS.to(bitmask.device)) & 1  # [..., words, 32]
    return bits.flatten(-2)[..., :vocab_size].bool()


def apply_bitmask_(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Set the logits of disallowed tokens to ``-inf`` in place; returns ``logits``.

    ``logits`` is ``[batch, vocab]`` (or ``[vocab]``) on any device; ``bitmask`` has the same
    batch size and at least ``ceil(vocab / 32)`` words. The packed mask (32x smaller than a
    bool mask) is what crosses to the logits' device; it is unpacked there.
    """
    allowed = bitmask_to_bool(bitmask.to(logits.device, non_blocking=True), logits.shape[-1])
    return logits.masked_fill_(~allowed, float("-inf"))


class GrammarMatcher:
    """The grammar state of one sequence: which tokens may come next, and advancing it.

    llguidance knows a single EOS id (the tokenizer's); this wrapper maps it to the request's
    own ``eos_token_ids``: they are all allowed exactly when the grammar may end, and accepting
    any of them ends the grammar.
    """

    def __init__(
        self,
        matcher: llguidance.LLMatcher,
        vocab_size: int,
        eos_token_ids: Sequence[int],
        library_eos: int,
    ) -> None:
        """Wrap a fresh llguidance matcher; ``library_eos`` is its tokenizer's EOS id."""
        self._m = matcher
        self.vocab_size = vocab_size
        self.eos_token_ids = sorted({t for t in eos_token_ids if 0 <= t < vocab_size})
        if not self.eos_token_ids:
            raise InvalidRequest(
                "structured output needs at least one end-of-sequence token to finish on",
                param="response_format",
            )
        self._eos_set = frozenset(self.eos_token_ids)
        #: The tokenizer-level EOS llguidance allows once the JSON may end.
        self._lib_eos = library_eos
        self._words = (vocab_size + 31) // 32
        self._terminated = False

    @property
    def is_terminated(self) -> bool:
        """True once the grammar is finished: an EOS was accepted or the JSON is complete.

        After this only EOS is allowed; the engine should stop the sequence.
        """
        return self._terminated or self._m.is_stopped()

    @property
    def is_accepting(self) -> bool:
        """True when the text so far is complete JSON, so EOS is allowed now."""
        return self._terminated or self._m.is_accepting()

    def fill_row(self, bitmask: torch.Tensor, row: int = 0) -> None:
        """Write this matcher's allowed tokens into row ``row`` of an int32 bit mask."""
        v = bitmask[row]
        _check_bitmask_row(v, self._words)
        if self._terminated:
            v.zero_()
        else:
            self._m.unsafe_compute_mask_ptr(v.data_ptr(), self._words * 4)
        self._fix_eos(v)

    def allowed_mask(self) -> torch.Tensor:
        """Boolean ``[vocab_size]`` on CPU: True for each token allowed next."""
        words = torch.empty((1, self._words), dtype=torch.int32)
        self.fill_row(words, 0)
        return bitmask_to_bool(words[0], self.vocab_size)

    def accept(self, token_id: int) -> None:
        """Advance the grammar by one sampled token.

        Raises :class:`GenerateError` if the grammar does not allow ``token_id`` here (a sampler
        that skipped the mask, or a bug); the matcher's state is left unchanged.
        """
        if self._m.is_error():  # e.g. a resource limit hit while computing the mask
            raise GenerateError(f"structured output: {self._m.get_error()}")
        if token_id in self._eos_set:
            if not self.is_accepting:
                raise GenerateError(
                    f"structured output: end of sequence (token {token_id}) before the JSON "
                    "was complete"
                )
            if not self._terminated and not self._m.consume_token(self._lib_eos):
                raise GenerateError(f"structured output: {self._m.get_error()}")
            self._terminated = True
            return
        if self.is_terminated or self._m.validate_tokens([token_id]) != 1:
            raise GenerateError(
                f"structured output: token {token_id} is not allowed by the grammar here"
            )
        if not self._m.consume_token(token_id):
            raise GenerateError(f"structured output: {self._m.get_error()}")

    def _fix_eos(self, row: torch.Tensor) -> None:
        """Map llguidance's EOS bit onto the request's EOS ids in one filled mask row."""
        word, bit = divmod(self._lib_eos, 32)
        may_end = self._terminated or bool((int(row[word]) >> bit) & 1)
        if self._lib_eos not in self._eos_set:
            row[word] = _clear_bit(int(row[word]), bit)
        if may_end:
            for t in self.eos_token_ids:
                w, b = divmod(t, 32)
                row[w] = _set_bit(int(row[w]), b)


class StructuredOutputCompiler:
    """Compiles ``StructuredOutput`` specs for one tokenizer and hands out fresh matchers.

    Compiled grammars are cached (LRU, keyed by the spec's canonical JSON) as matchers in
    their start state; each :meth:`matcher` call returns a cheap deep copy, so a schema used
    by many requests is compiled once.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        vocab_size: int,
        *,
        whitespace_pattern: str | None = None,
        cache_size: int = 256,
        num_threads: int | None = None,
    ) -> None:
        """Wrap a fast HF ``tokenizer`` for a model whose logits are ``vocab_size`` wide.

        ``whitespace_pattern`` is a regex for the whitespace allowed between JSON tokens, such
        as ``r"\\n?[ ]{0,8}"`` (at most one newline and an indent per gap); ``None`` (the default)
        is compact JSON with ``", "`` and ``": "``.
        ``num_threads`` sizes the pool that fills batch masks (``None``: llguidance's default).

        Raises :class:`InvalidRequest` for a slow (pure Python) tokenizer, which llguidance
        cannot read: the engine builds the compiler on the first structured request.
        """
        if not isinstance(tokenizer, PreTrainedTokenizerFast):
            raise InvalidRequest(
                "response_format is not supported for this model: constrained decoding needs a "
                f"fast (Rust) tokenizer, not {type(tokenizer).__name__}",
                param="response_format",
            )
        if vocab_size < len(tokenizer):
            raise ValueError(
                f"vocab_size {vocab_size} is smaller than the tokenizer's {len(tokenizer)} tokens"
            )
        self.ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)
        self.vocab_size = vocab_size
        self.cache_size = cache_size
        #: JSON-compiler options applied over any ``x-guidance`` block in a user's schema.
        self.options: JsonCompileOptions = (
            {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
            if whitespace_pattern is None
            else {"whitespace_flexible": True, "whitespace_pattern": whitespace_pattern}
        )
        #: Special tokens by text, matched as tokens when a tool-call format names them.
        self.special_tokens = _special_tokens(tokenizer)
        self._cache: OrderedDict[str, llguidance.LLMatcher] = OrderedDict()
        self._lock = threading.Lock()
        self._num_threads = num_threads
        self._executor: llguidance.LLExecutor | None = None
        #: How often :meth:`matcher` found / did not find the grammar compiled already.
        self.cache_hits = 0
        self.cache_misses = 0

    @property
    def executor(self) -> llguidance.LLExecutor:
        """The thread pool that fills batch masks (created on first use)."""
        if self._executor is None:
            self._executor = llguidance.LLExecutor(num_threads=self._num_threads)
        return self._executor

    def matcher(self, spec: StructuredOutput, eos_token_ids: Sequence[int]) -> GrammarMatcher:
        """A fresh matcher for ``spec`` that ends on any of ``eos_token_ids``.

        Raises :class:`InvalidRequest` (``param="response_format"``, or ``"tools"`` for tool
        calls) for a schema the library rejects, with its message.
        """
        try:
            key = _cache_key(spec)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(
                f"invalid JSON schema: not JSON-serializable ({exc})", param=_param(spec)
            ) from exc
        with self._lock:
            template = self._cache.get(key)
            if template is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
        if template is None:
            template = self._compile(spec)
            with self._lock:
                self.cache_misses += 1
                self._cache[key] = template
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return GrammarMatcher(
            template.deep_copy(), self.vocab_size, eos_token_ids, self.ll_tokenizer.eos_token
        )

    def _compile(self, spec: StructuredOutput) -> llguidance.LLMatcher:
        """Build the grammar for ``spec`` and a matcher in its start state."""
        param = _param(spec)
        what = "tool-call grammar" if spec.kind == "tool_calls" else "JSON schema"
        try:
            grammar = self._grammar(spec)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"invalid {what}: {exc}", param=param) from exc
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
            grammar, self.ll_tokenizer
        )
        if is_error:
            raise InvalidRequest(f"invalid {what}: {'; '.join(messages)}", param=param)
        matcher = llguidance.LLMatcher(self.ll_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise InvalidRequest(f"invalid {what}: {matcher.get_error()}", param=param)
        return matcher

    def _grammar(self, spec: StructuredOutput) -> str:
        """The llguidance grammar of ``spec`` (raises ValueError for a bad schema)."""
        if spec.kind == "tool_calls":
            if spec.tool_calls is None:
                raise InvalidRequest("a tool_calls constraint needs its tools", param="tools")
            lark = tool_call_lark(spec.tool_calls, self.special_tokens)
            return llguidance.LLMatcher.grammar_from_lark(lark)
        if spec.kind == "json_object":
            schema: Any = JSON_OBJECT_SCHEMA
        elif spec.kind == "json_schema":
            if spec.schema is None:
                raise InvalidRequest(
                    "response_format json_schema needs a schema", param="response_format"
                )
            schema = spec.schema
        else:  # pragma: no cover - StructuredOutput.kind is a Literal
            raise InvalidRequest(
                f"unknown response_format type {spec.kind!r}", param="response_format"
            )
        return llguidance.LLMatcher.grammar_from_json_schema(schema, overrides=self.options)


def fill_bitmask(
    matchers: Sequence[GrammarMatcher | None],
    bitmask: torch.Tensor,
    compiler: StructuredOutputCompiler | None = None,
) -> None:
    """Fill row ``i`` of ``bitmask`` for ``matchers[i]``; rows for ``None`` allow everything.

    ``bitmask`` is a contiguous CPU int32 tensor from :func:`allocate_bitmask` with at least
    ``len(matchers)`` rows. With a ``compiler``, the rows are computed in parallel on its
    executor (worth it from a few constrained sequences up); without, one after another.
    """
    if bitmask.dtype != torch.int32 or bitmask.device.type != "cpu" or bitmask.dim() != 2:
        raise ValueError("bitmask must be a 2-D int32 CPU tensor (see allocate_bitmask)")
    if not bitmask.is_contiguous():
        raise ValueError("bitmask must be contiguous")
    if len(matchers) > bitmask.shape[0]:
        raise ValueError(f"bitmask has {bitmask.shape[0]} rows for {len(matchers)} matchers")
    live: list[tuple[llguidance.LLMatcher, int]] = []
    for i, m in enumerate(matchers):
        if m is None:
            bitmask[i].fill_(-1)
        elif compiler is None or m._terminated:
            m.fill_row(bitmask, i)
        else:
            _check_bitmask_row(bitmask[i], m._words)
            live.append((m._m, i))
    if live and compiler is not None:
        words = bitmask.shape[1]
        compiler.executor.unsafe_compute_mask_ptr(
            live, bitmask.data_ptr(), words * 4, bitmask.shape[0]
        )
        for _, i in live:
            m = matchers[i]
            assert m is not None
            m._fix_eos(bitmask[i])


def _cache_key(spec: StructuredOutput) -> str:
    """Canonical JSON of a spec: equal specs share one compiled grammar."""
    tools = dataclasses.asdict(spec.tool_calls) if spec.tool_calls is not None else None
    return json.dumps(
        {"kind": spec.kind, "schema": spec.schema, "tools": tools},
        sort_keys=True,
        separators=(",", ":"),
    )


def _param(spec: StructuredOutput) -> str:
    """The request parameter a spec comes from, for error messages."""
    return "tools" if spec.kind == "tool_calls" else "response_format"


def _special_tokens(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """The tokenizer's special added tokens, text → id (markers a grammar matches as tokens)."""
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return {
        str(token.content): int(token_id)
        for token_id, token in decoder.items()
        if getattr(token, "special", False)
    }


def _check_bitmask_row(row: torch.Tensor, words: int) -> None:
    """Refuse a row llguidance would write past: wrong dtype, device, layout or width."""
    if row.dtype != torch.int32 or row.device.type != "cpu" or not row.is_contiguous():
        raise ValueError("bitmask rows must be contiguous int32 CPU tensors")
    if row.numel() != words:
        raise ValueError(f"bitmask row has {row.numel()} words; this vocabulary needs {words}")


def _set_bit(word: int, bit: int) -> int:
    """``word`` (a signed int32 value) with ``bit`` set."""
    return _to_int32(word | (1 << bit))


def _clear_bit(word: int, bit: int) -> int:
    """``word`` (a signed int32 value) with ``bit`` cleared."""
    return _to_int32(word & ~(1 << bit))


def _to_int32(x: int) -> int:
    """Wrap a Python int into the signed int32 range (two's complement)."""
    return ((x + 2**31) % 2**32) - 2**31
