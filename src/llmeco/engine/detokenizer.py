"""Token ids → text, one token at a time, with stop strings.

Streaming text token by token has two traps:

* A token is not a character. Byte-level BPE splits ``"😀"`` into tokens that each decode to
  ``"\\ufffd"`` alone; only together do they form the character. Text that ends in
  ``"\\ufffd"`` is therefore held back until a later token completes it.
* A token's text depends on its neighbours (SentencePiece drops the space of a word that starts
  the text). So, as vLLM does, each step decodes only a short window of ids: from
  ``prefix_offset`` (where the previously emitted chunk started) to the end, and emits what it
  adds to the text of ``ids[prefix_offset:read_offset]``. The window stays a few tokens long,
  so each token costs O(1) however long the sequence, and the first output token is decoded
  after a few prompt tokens, so it keeps its leading space.

Concatenated, the emitted text equals ``tokenizer.decode(output_ids, skip_special_tokens=...,
clean_up_tokenization_spaces=False)`` for tokenizers whose decoding concatenates per token
(byte-level BPE; SentencePiece apart from the first token's leading space, which the prompt
context keeps). Tokenization-space clean-up (``" ."`` → ``"."``) is never applied: it rewrites
text already streamed.

Stop strings are searched in the decoded text, so one may span several tokens and start in
the middle of one. Text that could still become a stop string (the longest end of the pending
text that is a prefix of a stop string) is held back; :meth:`IncrementalDetokenizer.flush`
releases it when the sequence ends for another reason. When several stop strings appear, the
one that ends first wins (and of those, the longest), which is the one a character-by-character
stream would have met first, so the result does not depend on how the text was split into
tokens.
"""

from __future__ import annotations

from typing import Any, Protocol

from llmeco.engine.request import SamplingParams

__all__ = ["IncrementalDetokenizer"]

#: Prompt tokens decoded before the first output token so that it is decoded in context.
_PROMPT_CONTEXT = 5
#: Ids before the decode window are dropped once this many have accumulated.
_TRIM_AFTER = 64


class Decoder(Protocol):
    """The part of a Hugging Face tokenizer the detokenizer uses."""

    def decode(self, token_ids: list[int], **kwargs: Any) -> str:
        """Text of ``token_ids``."""
        ...


class IncrementalDetokenizer:
    """Turns one sequence's output tokens into text deltas that are safe to stream."""

    def __init__(
        self, tokenizer: Decoder, prompt_token_ids: list[int], params: SamplingParams
    ) -> None:
        """Prepare to detokenize the output of ``prompt_token_ids`` sampled with ``params``."""
        self._tokenizer = tokenizer
        self._skip_special = params.skip_special_tokens
        self._stops = list(params.stop)
        self._include_stop = params.include_stop_str_in_output
        self._max_stop = max((len(s) for s in self._stops), default=0)
        self._stop_starts = frozenset(s[0] for s in self._stops)

        self._ids = list(prompt_token_ids[-_PROMPT_CONTEXT:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._prefix_text: str | None = None  # decode(ids[prefix_offset:read_offset]), cached

        self._pending = ""  # decoded but not yet emitted: a possible start of a stop string
        self._emitted: list[str] = []
        self._finished = False
        #: The stop string that ended the text, once one has.
        self.stop_reason: str | None = None

    @property
    def text(self) -> str:
        """All text emitted so far."""
        return "".join(self._emitted)

    @property
    def finished(self) -> bool:
        """True once a stop string matched or :meth:`flush` was called."""
        return self._finished

    def add(self, token_id: int) -> tuple[str, str | None]:
        """Take the next output token; return ``(text safe to emit now, matched stop string)``.

        When a stop string matches, the text ends before it (or after it, with
        ``include_stop_str_in_output``) and the detokenizer is finished: later tokens are
        ignored.
        """
        if self._finished:
            return "", None
        self._ids.append(token_id)
        new_text = self._decode_new()
        if not new_text:
            return "", None
        old_len = len(self._pending)
        self._pending += new_text
        if self._stops:
            match = self._find_stop(old_len)
            if match is not None:
                start, stop = match
                end = start + len(stop) if self._include_stop else start
                self._finished = True
                self.stop_reason = stop
                return self._emit(end), stop
        return self._emit(len(self._pending) - self._held_back()), None

    def flush(self) -> str:
        """Release all text still held back; call once when the sequence ends without a stop string.

        That is an unfinished character (its bytes are emitted as ``"\\ufffd"``, as
        ``tokenizer.decode`` would) and text that looked like the start of a stop string.
        """
        if self._finished:
            return ""
        self._finished = True
        prefix_text = self._window_prefix_text()
        full = self._decode(self._ids[self._prefix_offset :])
        if len(full) > len(prefix_text):
            self._pending += full[len(prefix_text) :]
        return self._emit(len(self._pending))

    # -- internals ------------------------------------------------------------------------
    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(
            ids,
            skip_special_tokens=self._skip_special,
            clean_up_tokenization_spaces=False,
        )

    def _window_prefix_text(self) -> str:
        if self._prefix_text is None:
            self._prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        return self._prefix_text

    def _decode_new(self) -> str:
        """Text the newest token completes, or "" while it is unfinished (vLLM's method)."""
        prefix_text = self._window_prefix_text()
        full = self._decode(self._ids[self._prefix_offset :])
        if len(full) <= len(prefix_text) or full.endswith("\ufffd"):
            return ""  # nothing visible yet, or a character still missing bytes
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        self._prefix_text = None
        if self._prefix_offset > _TRIM_AFTER:
            del self._ids[: self._prefix_offset]
            self._read_offset -= self._prefix_offset
            self._prefix_offset = 0
        return full[len(prefix_text) :]

    def _find_stop(self, old_len: int) -> tuple[int, str] | None:
        """The earliest-ending stop string in the pending text (``old_len`` chars held none)."""
        best: tuple[int, int, str] | None = None  # (end, -length, stop)
        for stop in self._stops:
            start = self._pending.find(stop, max(0, old_len - len(stop) + 1))
            if start >= 0:
                key = (start + len(stop), -len(stop), stop)
                if best is None or key < best:
                    best = key
        if best is None:
            return None
        end, neg_len, stop = best
        return end + neg_len, stop

    def _held_back(self) -> int:
        """Length of the longest end of the pending text that is a prefix of a stop string."""
        pending = self._pending
        for k in range(min(len(pending), self._max_stop - 1), 0, -1):
            if pending[-k] in self._stop_starts:
                tail = pending[-k:]
                if any(s.startswith(tail) for s in self._stops):
                    return k
        return 0

    def _emit(self, n: int) -> str:
        """Move the first ``n`` pending characters to the emitted text and return them."""
        text, self._pending = self._pending[:n], self._pending[n:]
        if self._finished:
            self._pending = ""
        if text:
            self._emitted.append(text)
        return text
