"""An app request as data: what to ask the model, how, and how to read the answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmeco.engine.request import SamplingParams


@dataclass
class PromptSpec:
    """One model call: chat messages, sampling parameters and the answer's parser.

    ``parse`` turns the full generated text into the app's result; it raises
    :class:`~llmeco.errors.GenerateError` when the model's output cannot be used.
    """

    messages: list[dict[str, str]]
    params: SamplingParams
    parse: Callable[[str], Any] = field(default=lambda text: text.strip())
