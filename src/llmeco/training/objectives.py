"""Turning records into training examples, batches and a loss.

An *example* is ``(input_ids, labels)`` with ``labels[i] = -100`` where no loss is taken.
Labels are aligned with inputs (the loss shifts them), as in Hugging Face.

* pretrain: every text is tokenized, followed by EOS, concatenated and cut into
  fixed-length blocks; every token is a target.
* sft: a conversation is rendered turn by turn with :func:`llmeco.modeling.chat.render_chat`
  (the model's chat template, and the tools of the record — the same text the engine serves
  with); only the assistant replies are targets, their tool calls included, *including* the
  token that ends each reply (``<|im_end|>`` or EOS) — masking the end token out of the loss
  trains a model that never stops (trl #1623). Prompts and tool results carry no loss.

The loss is a *sum* of token cross-entropies; the loop divides by the number of target
tokens in the whole accumulated batch, so bs=8 equals bs=2 × accum 4 (trl #2175).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from llmeco.data.tokenizer import record_text
from llmeco.errors import ConfigError, InvalidRequest
from llmeco.modeling.chat import chat_template_source, render_chat

IGNORE = -100
Example = tuple[list[int], list[int]]


def pack_blocks(records: Sequence[dict[str, Any]], tokenizer: Any, seq_len: int) -> list[Example]:
    """Pretraining examples: all texts + EOS, concatenated, cut into ``seq_len`` blocks.

    The tail shorter than a block is dropped. Raises ConfigError when not even one
    block can be made (data too small for ``seq_len``).
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("the tokenizer has no eos token to separate documents")
    stream: list[int] = []
    for record in records:
        stream.extend(tokenizer(record_text(record), add_special_tokens=False)["input_ids"])
        stream.append(int(eos))
    blocks = [stream[i : i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]
    if not blocks:
        raise ConfigError(
            f"only {len(stream)} tokens of data: fewer than one block of seq_len={seq_len}"
        )
    return [(b, list(b)) for b in blocks]


def _render(
    tokenizer: Any,
    messages: Sequence[dict[str, Any]],
    generation_prompt: bool,
    tools: Sequence[dict[str, Any]] | None,
) -> str:
    try:
        return render_chat(
            tokenizer, messages, tools=tools, add_generation_prompt=generation_prompt
        )
    except InvalidRequest as exc:
        raise ConfigError(f"sft: {exc.message}") from exc


def _turns(messages: Sequence[dict[str, Any]]) -> list[int]:
    """End index (exclusive) of each turn: one per message, except that consecutive ``tool``
    messages form one turn (the fallback renders them as one user message)."""
    ends: list[int] = []
    for k, message in enumerate(messages):
        if ends and message["role"] == "tool" and messages[k - 1]["role"] == "tool":
            ends[-1] = k + 1
        else:
            ends.append(k + 1)
    return ends


def sft_example(
    messages: list[dict[str, Any]],
    tokenizer: Any,
    end_ids: set[int],
    seq_len: int,
    tools: Sequence[dict[str, Any]] | None = None,
) -> Example | None:
    """One conversation → ids and labels with loss on assistant replies only.

    Each turn's text is the difference between the conversation rendered up to it and up
    to the turn before (with ``tools``, OpenAI function definitions, in every rendering); an
    assistant turn is split into its header (the generation prompt, no loss) and its body —
    its text and its tool calls — with loss up to and including the first end token in
    ``end_ids``; whitespace the template adds after that token gets no loss. Tool results and
    prompts get none. Tokenizing piecewise makes the prompt tokens equal to what the engine
    feeds at inference. Returns None if truncation to ``seq_len`` leaves no target.

    Raises:
        ConfigError: the model has no chat template, or it is not prefix-stable.
    """
    if not chat_template_source(tokenizer):
        raise ConfigError("sft needs a tokenizer with a chat template")
    ids: list[int] = []
    labels: list[int] = []
    previous = ""

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    start = 0
    for end in _turns(messages):
        full = _render(tokenizer, messages[:end], False, tools)
        if not full.startswith(previous):
            raise ConfigError("the chat template is not prefix-stable; cannot mask turns")
        if messages[end - 1]["role"] == "assistant":
            prompt = _render(tokenizer, messages[:start], True, tools)
            if not (prompt.startswith(previous) and full.startswith(prompt)):
                raise ConfigError("the chat template's generation prompt does not prefix the reply")
            header = encode(prompt[len(previous) :])
            body = encode(full[len(prompt) :])
            ends = [i for i, t in enumerate(body) if t in end_ids]
            last = ends[0] if ends else len(body) - 1
            ids += header + body
            labels += [IGNORE] * len(header)
            labels += [t if i <= last else IGNORE for i, t in enumerate(body)]
        else:
            piece = encode(full[len(previous) :])
            ids += piece
            labels += [IGNORE] * len(piece)
        previous, start = full, end
    ids, labels = ids[:seq_len], labels[:seq_len]
    if all(label == IGNORE for label in labels[1:]):
        return None
    return ids, labels


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` / ``attention_mask`` / ``labels`` tensors [B, T]."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def target_count(batch: dict[str, torch.Tensor]) -> int:
    """Tokens that carry loss in a batch (labels after the shift that are not ignored)."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def example_targets(example: Example) -> int:
    """Targets of one example: labels after the shift that are not ignored."""
    return sum(1 for label in example[1][1:] if label != IGNORE)


def summed_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of next-token cross-entropies over the batch's targets (float32)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shift_logits = logits[:, :-1].float()  # [B, T-1, V]
    shift_labels = batch["labels"][:, 1:]  # [B, T-1]
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


Autocast = Callable[[], contextlib.AbstractContextManager[Any]]


class Objective(Protocol):
    """What the loop needs to know about a task: batches, targets, loss and evaluation."""

    def collate(self, examples: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Padded tensors of a micro-batch."""
        ...

    def targets(self, example: Any) -> int:
        """How many loss terms one example contributes (the normaliser of the step)."""
        ...

    def summed_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum (not mean) of the loss terms of a batch."""
        ...

    def evaluate(
        self,
        model: Any,
        examples: Sequence[Any],
        batch_size: int,
        limit: int,
        device: torch.device,
        autocast: Autocast,
    ) -> dict[str, float]:
        """Validation metrics (``eval_loss`` and task-specific ones) over the first ``limit``
        examples (0 = all), in batches of ``batch_size``."""
        ...


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


class CausalObjective:
    """Next-token loss on the labelled tokens (pretrain and sft)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def collate(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        """Right-padded ids, mask and labels."""
        return collate(examples, self.pad_id)

    def targets(self, example: Example) -> int:
        """Labelled tokens after the shift."""
        return example_targets(example)

    def summed_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed token cross-entropy."""
        return summed_loss(model, batch)

    @torch.no_grad()
    def evaluate(
        self,
        model: Any,
        examples: Sequence[Example],
        batch_size: int,
        limit: int,
        device: torch.device,
        autocast: Autocast,
    ) -> dict[str, float]:
        """Token-weighted loss and perplexity over the first ``limit`` examples (0 = all);
        the batch size does not change the result (right padding, masked)."""
        was_training = model.training
        model.eval()
        loss_sum, tokens = 0.0, 0
        end = len(examples) if limit == 0 else min(len(examples), limit)
        for i in range(0, end, batch_size):
            batch = collate(examples[i : min(end, i + batch_size)], self.pad_id)
            with autocast():
                loss_sum += float(summed_loss(model, _to(batch, device)))
            tokens += target_count(batch)
        model.train(was_training)
        loss = loss_sum / max(1, tokens)
        return {"eval_loss": loss, "eval_ppl": math.exp(min(loss, 50.0))}


class ExampleStream:
    """Examples in a seeded shuffled order, epoch after epoch; its position is resumable."""

    def __init__(self, examples: Sequence[Example], seed: int) -> None:
        if not examples:
            raise ConfigError("no training examples")
        self.examples = examples
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._order = self._permutation()

    def _permutation(self) -> list[int]:
        order = list(range(len(self.examples)))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order

    def take(self, n: int) -> list[Example]:
        """The next ``n`` examples, rolling into the next epoch as needed."""
        out = []
        for _ in range(n):
            if self.position >= len(self._order):
                self.epoch += 1
                self.position = 0
                self._order = self._permutation()
            out.append(self.examples[self._order[self.position]])
            self.position += 1
        return out

    def state_dict(self) -> dict[str, int]:
        """Where the stream is: enough to continue exactly."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a saved position."""
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation()
