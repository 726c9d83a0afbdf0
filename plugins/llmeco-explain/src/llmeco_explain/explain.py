"""The explanations themselves (blocking; the service runs them on its worker threads).

* :func:`explain_classifier` — a trained classifier (``llmeco train classify``): its
  prediction over every label and attributions of the input tokens to the probability of
  the predicted (or a chosen) label.
* :func:`explain_prompted` — a generation model given a label set: each label's probability
  is the model's probability of answering with that label's JSON (the answer format of
  ``/v1/tasks/classify``), renormalised over the labels; attributions are to the
  log-probability of the predicted label's answer, over the tokens of the caller's text only.
* :func:`explain_answer` — attributions of a generated answer (the engine produced it) to the
  tokens of the user's messages: the log-probability of the whole answer, or of its first
  token, under the same weights loaded with transformers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llmeco.errors import InvalidRequest
from llmeco_explain.attribution import (
    Attribution,
    AttributionTarget,
    Baseline,
    OcclusionMode,
    integrated_gradients,
    occlusion,
)
from llmeco_explain.targets import (
    CausalTarget,
    ClassifierTarget,
    SequenceTarget,
    Tokenized,
    tokenize_spans,
)

Method = Literal["integrated_gradients", "occlusion"]


@dataclass(frozen=True)
class Options:
    """How to attribute: the method and its knobs (validated by the request model)."""

    method: Method = "integrated_gradients"
    steps: int = 32
    baseline: Baseline = "pad"
    window: int = 1
    occlusion: OcclusionMode = "delete"


@dataclass
class Explained:
    """An explanation before it becomes a response."""

    tokens: Tokenized
    attribution: Attribution
    #: What the scores explain, in words the response shows.
    target: dict[str, Any]
    label: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)


def attribute(target: AttributionTarget, positions: Sequence[int], options: Options) -> Attribution:
    """Run the chosen method on ``target`` over ``positions``."""
    if options.method == "integrated_gradients":
        return integrated_gradients(
            target, positions, steps=options.steps, baseline=options.baseline
        )
    return occlusion(target, positions, window=options.window, mode=options.occlusion)


def check_length(count: int, limit: int, what: str, param: str) -> None:
    """400 when ``count`` tokens exceed ``limit`` (explanations cost a forward and backward
    pass per step, so long inputs are refused rather than truncated or left to run).

    Raises:
        InvalidRequest: too many tokens.
    """
    if count > limit:
        raise InvalidRequest(
            f"{what} is {count} tokens; explanations take at most {limit}. Shorten it.",
            param=param,
        )


def _pad_id(tokenizer: Any, model: Any) -> int:
    for value in (
        getattr(model.config, "pad_token_id", None),
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
    ):
        if value is not None:
            return int(value[0] if isinstance(value, list) else value)
    return 0


def _label_index(labels: Sequence[str], wanted: str | None, best: int) -> int:
    if wanted is None:
        return best
    if wanted not in labels:
        raise InvalidRequest(
            f"target_label {wanted!r} is not one of the labels: {', '.join(labels)}",
            param="target_label",
        )
    return list(labels).index(wanted)


def explain_classifier(
    model: Any,
    tokenizer: Any,
    labels: Sequence[str],
    text: str,
    options: Options,
    *,
    max_tokens: int,
    target_label: str | None = None,
) -> Explained:
    """Predict and attribute with a sequence-classification model (see the module doc).

    Raises:
        InvalidRequest: the text is longer than ``max_tokens`` tokens, or ``target_label``
            is not a label of the model.
    """
    tokens = tokenize_spans(tokenizer, text, [(0, len(text))], add_special_tokens=True)
    check_length(len(tokens.ids), max_tokens, "input", "input")
    pad = _pad_id(tokenizer, model)
    probe = ClassifierTarget(model, tokens.ids, pad, 0)
    probs = probe.probabilities()
    best = max(range(len(probs)), key=lambda i: probs[i])
    index = _label_index(labels, target_label, best)
    target = ClassifierTarget(model, tokens.ids, pad, index)
    attribution = attribute(target, tokens.positions, options)
    return Explained(
        tokens,
        attribution,
        {
            "kind": "label",
            "label": labels[index],
            "unit": "probability",
            "value": attribution.value,
        },
        label=labels[best],
        probabilities={name: p for name, p in zip(labels, probs, strict=True)},
    )


def user_spans(prompt: str, messages: Sequence[dict[str, str]]) -> list[tuple[int, int]]:
    """Character spans of the user messages' contents in the rendered ``prompt``, found in
    order; a content the template changed beyond recognition is left out."""
    spans, cursor = [], 0
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content", "")
        for probe in (content, content.strip()):
            at = prompt.find(probe, cursor) if probe else -1
            if at >= 0:
                spans.append((at, at + len(probe)))
                cursor = at + len(probe)
                break
    return spans


def render(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """The prompt text the engine encodes for ``messages`` (the model's chat template)."""
    from llmeco.modeling.chat import render_chat

    return render_chat(tokenizer, messages)


def answer_ids(tokenizer: Any, label: str) -> list[int]:
    """Tokens of the answer ``/v1/tasks/classify`` constrains a chat model to for ``label``."""
    text = json.dumps({"label": label})
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def explain_prompted(
    model: Any,
    tokenizer: Any,
    messages: Sequence[dict[str, str]],
    labels: Sequence[str],
    options: Options,
    *,
    max_tokens: int,
    target_label: str | None = None,
) -> Explained:
    """Label probabilities and attributions for a generation model given ``labels``.

    Raises:
        InvalidRequest: the prompt is too long, or ``target_label`` is not in ``labels``.
    """
    prompt = render(tokenizer, messages)
    tokens = tokenize_spans(
        tokenizer, prompt, user_spans(prompt, messages), add_special_tokens=False
    )
    check_length(len(tokens.ids), max_tokens, "the prompt (chat template included)", "input")
    pad = _pad_id(tokenizer, model)
    scores = []
    for label in labels:
        target = CausalTarget(model, tokens.ids, pad, answer_ids(tokenizer, label))
        scores.append(target.score_ids([tokens.ids])[0])
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    probs = [w / sum(weights) for w in weights]
    best = max(range(len(labels)), key=lambda i: scores[i])
    index = _label_index(labels, target_label, best)
    continuation = answer_ids(tokenizer, labels[index])
    target = CausalTarget(model, tokens.ids, pad, continuation)
    attribution = attribute(target, tokens.positions, options)
    return Explained(
        tokens,
        attribution,
        {
            "kind": "label_answer",
            "label": labels[index],
            "unit": "logprob",
            "text": json.dumps({"label": labels[index]}),
            "value": attribution.value,
        },
        label=labels[best],
        probabilities={name: p for name, p in zip(labels, probs, strict=True)},
    )


def explain_answer(
    model: Any,
    tokenizer: Any,
    messages: Sequence[dict[str, str]],
    answer: Sequence[int],
    answer_text: str,
    options: Options,
    *,
    mode: SequenceTarget,
    max_tokens: int,
) -> Explained:
    """Attributions of the user's tokens to a generated answer's log-probability.

    Raises:
        InvalidRequest: the prompt is too long, or the answer is empty (nothing to explain).
    """
    if not answer:
        raise InvalidRequest(
            "the model generated no tokens, so there is no answer to explain", param="messages"
        )
    prompt = render(tokenizer, messages)
    tokens = tokenize_spans(
        tokenizer, prompt, user_spans(prompt, messages), add_special_tokens=False
    )
    check_length(len(tokens.ids), max_tokens, "the prompt (chat template included)", "messages")
    target = CausalTarget(model, tokens.ids, _pad_id(tokenizer, model), answer, mode)
    attribution = attribute(target, tokens.positions, options)
    return Explained(
        tokens,
        attribution,
        {"kind": mode, "text": answer_text, "unit": "logprob", "value": attribution.value},
    )
