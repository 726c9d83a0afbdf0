"""The writing assistant: outline, continue, rewrite, shorten and expand, with tone and style.

Each action is one prompt spec; the server streams it. Sampling is mildly creative by default
(temperature 0.7, top-p 0.9) and reproducible with a seed.
"""

from __future__ import annotations

from typing import Literal

from llmeco.apps.spec import PromptSpec
from llmeco.engine.request import SamplingParams

Action = Literal["outline", "continue", "rewrite", "shorten", "expand"]
ACTIONS: tuple[Action, ...] = ("outline", "continue", "rewrite", "shorten", "expand")

_TASK: dict[Action, str] = {
    "outline": "Write an outline for a piece about the user's topic or draft, as a numbered "
    "list of sections with one line each.",
    "continue": "Continue the user's text from where it stops, in the same voice. Reply with "
    "the continuation only.",
    "rewrite": "Rewrite the user's text. Keep its meaning. Reply with the rewritten text only.",
    "shorten": "Shorten the user's text to about half its length. Keep the key points. Reply "
    "with the shortened text only.",
    "expand": "Expand the user's text with more detail and examples. Reply with the expanded "
    "text only.",
}


def write(
    action: Action,
    text: str,
    *,
    tone: str | None,
    style: str | None,
    audience: str | None,
    max_tokens: int | None,
    temperature: float,
    seed: int | None,
) -> PromptSpec:
    """The prompt spec for one writing action on ``text``."""
    extras = [
        f"Use a {tone} tone." if tone else "",
        f"Write in the style of {style}." if style else "",
        f"The audience is {audience}." if audience else "",
    ]
    system = " ".join(["You are a writing assistant.", _TASK[action], *filter(None, extras)])
    return PromptSpec(
        [{"role": "system", "content": system}, {"role": "user", "content": text}],
        SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=0.9, seed=seed),
    )
