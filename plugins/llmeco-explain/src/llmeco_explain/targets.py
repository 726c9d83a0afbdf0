"""What attributions explain, on models loaded with transformers, and input tokenization.

Two kinds of :class:`~llmeco_explain.attribution.AttributionTarget`:

* :class:`ClassifierTarget` — a sequence-classification model (the trained head a served
  classifier already holds in process): the softmax probability of one class. Scored from
  input embeddings in both modes, so the head always pools the real last token (with
  ``input_ids`` transformers pools the last non-pad id, which a masked token would move).
* :class:`CausalTarget` — a causal language model (the served generation model's weights,
  loaded again off the engine through ``AutoModelForCausalLM`` from the same local
  safetensors directory): the log-probability of a fixed continuation (a generated answer,
  a label's JSON answer) after the prompt, summed over its tokens or of its first token.

:func:`tokenize_spans` tokenizes a text with offsets and picks the tokens inside given
character spans (the caller's input inside a chat-template prompt), with display pieces that
join back to the spans' text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from llmeco.errors import InvalidRequest

#: How a causal target scores a continuation: all its tokens, or only the first.
SequenceTarget = Literal["sequence", "first_token"]


def _grouped(
    rows: Sequence[Sequence[int]], batch_size: int
) -> list[tuple[list[int], list[list[int]]]]:
    """Rows grouped by length (so no padding is needed), in chunks of ``batch_size``:
    ``(original indices, rows)`` per chunk."""
    by_len: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_len.setdefault(len(row), []).append(i)
    out = []
    for indices in by_len.values():
        for k in range(0, len(indices), batch_size):
            part = indices[k : k + batch_size]
            out.append((part, [list(rows[i]) for i in part]))
    return out


class _EmbeddingTarget:
    """Shared parts: the model's input embedding table and batched scoring of id rows."""

    batch_size = 16

    def __init__(self, model: Any, ids: Sequence[int], pad_id: int) -> None:
        self.model = model
        self.ids = list(ids)
        self.pad_id = int(pad_id)
        self._table = model.get_input_embeddings()
        self.device = self._table.weight.device

    def embed(self, ids: Sequence[int]) -> torch.Tensor:
        """``[len(ids), d]`` input embeddings, in float32 (no gradient)."""
        with torch.no_grad():
            tensor = torch.tensor(list(ids), dtype=torch.long, device=self.device)
            rows: torch.Tensor = self._table(tensor)
            return rows.float()

    def score_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Subclasses: ``[B]`` target values for ``[B, n, d]`` embeddings."""
        raise NotImplementedError

    def score_ids(self, rows: Sequence[Sequence[int]]) -> list[float]:
        """The target for each row of ids (an empty row reads as the pad token alone)."""
        safe = [list(r) or [self.pad_id] for r in rows]
        out = [0.0] * len(safe)
        with torch.no_grad():
            for indices, chunk in _grouped(safe, self.batch_size):
                embeddings = torch.stack([self.embed(r) for r in chunk])
                for i, value in zip(indices, self.score_embeddings(embeddings), strict=True):
                    out[i] = float(value)
        return out

    def _dtype(self) -> torch.dtype:
        dtype: torch.dtype = self._table.weight.dtype
        return dtype


class ClassifierTarget(_EmbeddingTarget):
    """The probability a sequence-classification model gives class ``label_index``."""

    def __init__(self, model: Any, ids: Sequence[int], pad_id: int, label_index: int) -> None:
        super().__init__(model, ids, pad_id)
        self.label_index = label_index

    def probabilities(self) -> list[float]:
        """Every class's probability on the real input (no gradient)."""
        with torch.no_grad():
            logits = self._logits(self.embed(self.ids)[None])
        return [float(p) for p in torch.softmax(logits[0], -1)]

    def _logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(embeddings.shape[:2], dtype=torch.long, device=embeddings.device)
        out = self.model(inputs_embeds=embeddings.to(self._dtype()), attention_mask=mask)
        logits: torch.Tensor = out.logits.float()
        return logits

    def score_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[B]`` probabilities of the target class."""
        return torch.softmax(self._logits(embeddings), -1)[:, self.label_index]


class CausalTarget(_EmbeddingTarget):
    """The log-probability a causal LM gives ``continuation`` after the prompt ``ids``."""

    batch_size = 8

    def __init__(
        self,
        model: Any,
        ids: Sequence[int],
        pad_id: int,
        continuation: Sequence[int],
        mode: SequenceTarget = "sequence",
    ) -> None:
        super().__init__(model, ids, pad_id)
        if not continuation:
            raise ValueError("a causal target needs at least one continuation token")
        self.continuation = list(continuation)
        self.mode = mode
        self._tail = self.embed(self.continuation)

    def token_logprobs(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[B, len(continuation)]`` log-probability of each continuation token."""
        batch, n = embeddings.shape[:2]
        tail = self._tail[None].expand(batch, -1, -1)
        full = torch.cat([embeddings, tail], 1).to(self._dtype())
        mask = torch.ones(full.shape[:2], dtype=torch.long, device=full.device)
        logits = self.model(inputs_embeds=full, attention_mask=mask).logits.float()
        m = len(self.continuation)
        steps = torch.log_softmax(logits[:, n - 1 : n - 1 + m], -1)
        wanted = torch.tensor(self.continuation, device=steps.device)[None, :, None]
        picked: torch.Tensor = steps.gather(-1, wanted.expand(batch, -1, -1))[..., 0]
        return picked

    def score_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[B]`` log-probability of the continuation (or of its first token)."""
        logprobs = self.token_logprobs(embeddings)
        return logprobs[:, 0] if self.mode == "first_token" else logprobs.sum(-1)


@dataclass(frozen=True)
class Tokenized:
    """A text's token ids and which of them are the caller's input."""

    ids: list[int]
    #: Indices into ``ids`` of the tokens inside the input spans, in order.
    positions: list[int]
    #: What each attributed token shows: the span text it covers (pieces join to the span).
    pieces: list[str]
    #: Which span (0, 1, …) each attributed token lies in.
    segments: list[int]


def tokenize_spans(
    tokenizer: Any, text: str, spans: Sequence[tuple[int, int]], *, add_special_tokens: bool
) -> Tokenized:
    """Tokenize ``text`` and find the tokens inside each ``(start, end)`` character span.

    Raises:
        InvalidRequest: the model's tokenizer cannot report character offsets (a "slow"
            Python tokenizer), so tokens cannot be mapped back to the text.
    """
    try:
        enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    except NotImplementedError as exc:
        raise InvalidRequest(
            "this model's tokenizer cannot map tokens to text offsets (it is not a fast "
            "tokenizer), so its attributions cannot be shown",
            param="model",
        ) from exc
    ids = [int(i) for i in enc["input_ids"]]
    offsets = [(int(s), int(e)) for s, e in enc["offset_mapping"]]
    positions: list[int] = []
    pieces: list[str] = []
    segments: list[int] = []
    for segment, (lo, hi) in enumerate(spans):
        cursor, first = lo, len(pieces)
        for i, (s, e) in enumerate(offsets):
            if e <= s or e <= lo or s >= hi:
                continue  # special tokens (empty span) and tokens outside the span
            end = min(e, hi)
            positions.append(i)
            pieces.append(text[cursor:end] if end > cursor else "")
            segments.append(segment)
            cursor = max(cursor, end)
        if len(pieces) > first and cursor < hi:
            pieces[-1] += text[cursor:hi]
    return Tokenized(ids, positions, pieces, segments)


class ModelCache:
    """Causal LMs loaded with transformers for attribution, by local directory (LRU).

    Loading takes seconds and the weights take memory, so the few most recently used models
    stay loaded. Float32: integrated gradients in half precision are mostly rounding noise.
    """

    def __init__(self, size: int = 2, device: str = "cpu") -> None:
        self.size = size
        self.device = device
        self._models: OrderedDict[Path, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> tuple[Any, Any]:
        """``(model, tokenizer)`` for the safetensors directory ``path``, loaded once."""
        with self._lock:
            found = self._models.get(path)
            if found is not None:
                self._models.move_to_end(path)
                return found
            loaded = self._load(path)
            self._models[path] = loaded
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return loaded

    def _load(self, path: Path) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM

        from llmeco.modeling.load import load_tokenizer

        model: Any = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=torch.float32, use_safetensors=True
        )
        model = model.to(self.device)
        model.eval()
        model.requires_grad_(False)
        return model, load_tokenizer(path)
