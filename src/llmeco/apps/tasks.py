"""Task endpoints as prompt specs: translate, summarize, correct, classify, sentiment, moderate,
extract.

Each function takes the caller's validated input and returns a :class:`PromptSpec`. Tasks whose
answer is a choice or a record (classify, sentiment, moderate, extract) constrain decoding with
a JSON schema, so the answer always parses and always names one of the allowed values — the
model cannot answer "Positive!" when the contract says ``positive``. All tasks decode greedily:
the same input gives the same output.
"""

from __future__ import annotations

import json
from typing import Any

from llmeco.apps.spec import PromptSpec
from llmeco.engine.request import SamplingParams, StructuredOutput
from llmeco.errors import InvalidRequest

SENTIMENTS = ("positive", "negative", "neutral")
MODERATION_CATEGORIES = ("hate", "harassment", "self_harm", "sexual", "violence", "illicit")


def _params(max_tokens: int | None, schema: dict[str, Any] | None = None) -> SamplingParams:
    structured = StructuredOutput("json_schema", schema) if schema is not None else None
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, structured=structured)


def _system(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Constrained decoding only leaves unparseable text when max_tokens cut it short.
        raise InvalidRequest(
            "the model's answer was cut off before it was complete; raise max_tokens",
            param="max_tokens",
        ) from exc


def translate(text: str, target: str, source: str | None, max_tokens: int | None) -> PromptSpec:
    """Translate ``text`` into ``target`` (from ``source`` if given, else auto-detected)."""
    origin = f" from {source}" if source else ""
    return PromptSpec(
        [
            _system(
                f"You are a translator. Translate the user's text{origin} into {target}. "
                "Reply with the translation only."
            ),
            _user(text),
        ],
        _params(max_tokens),
    )


def summarize(text: str, max_words: int, style: str, max_tokens: int | None) -> PromptSpec:
    """Summarize ``text`` in at most ``max_words`` words, as a paragraph or bullet points."""
    shape = "as short bullet points" if style == "bullets" else "in one paragraph"
    return PromptSpec(
        [
            _system(
                f"Summarize the user's text {shape}, in at most {max_words} words. "
                "Reply with the summary only."
            ),
            _user(text),
        ],
        _params(max_tokens),
    )


def correct(text: str, max_tokens: int | None) -> PromptSpec:
    """Fix spelling and grammar in ``text`` without changing its meaning."""
    return PromptSpec(
        [
            _system(
                "Correct the spelling and grammar of the user's text. Keep its meaning "
                "and wording otherwise. Reply with the corrected text only."
            ),
            _user(text),
        ],
        _params(max_tokens),
    )


def classify(text: str, labels: list[str], instructions: str | None) -> PromptSpec:
    """Pick exactly one of ``labels`` for ``text``."""
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": labels}},
        "required": ["label"],
        "additionalProperties": False,
    }
    hint = f" {instructions}" if instructions else ""
    listed = ", ".join(labels)
    return PromptSpec(
        [
            _system(
                f"Classify the user's text into exactly one of these labels: {listed}.{hint} "
                'Answer with JSON like {"label": "..."}.'
            ),
            _user(text),
        ],
        _params(16 + 8 * max(len(label) for label in labels), schema),
        parse=lambda out: _json(out)["label"],
    )


def sentiment(text: str) -> PromptSpec:
    """The sentiment of ``text``: positive, negative or neutral."""
    return classify(text, list(SENTIMENTS), "Judge the writer's feeling.")


def moderate(text: str) -> PromptSpec:
    """Flag ``text`` against the moderation categories (true/false each)."""
    props = {c: {"type": "boolean"} for c in MODERATION_CATEGORIES}
    schema = {
        "type": "object",
        "properties": props,
        "required": list(MODERATION_CATEGORIES),
        "additionalProperties": False,
    }
    listed = ", ".join(MODERATION_CATEGORIES)
    return PromptSpec(
        [
            _system(
                "You are a content moderator. For each category say whether the user's "
                f"text contains it: {listed}. Answer with JSON booleans."
            ),
            _user(text),
        ],
        _params(160, schema),
        parse=_json,
    )


def extract(
    text: str, schema: dict[str, Any], instructions: str | None, max_tokens: int | None
) -> PromptSpec:
    """Fill a record that validates against the caller's JSON ``schema`` from ``text``."""
    hint = f" {instructions}" if instructions else ""
    return PromptSpec(
        [
            _system(
                "Extract the requested fields from the user's text as JSON matching this "
                f"schema: {json.dumps(schema, separators=(',', ':'))}. Copy each value exactly "
                f"as it is written in the text; never make one up.{hint}"
            ),
            _user(text),
        ],
        _params(max_tokens, schema),
        parse=_json,
    )
