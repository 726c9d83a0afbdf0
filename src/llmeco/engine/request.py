"""What goes into the engine (prompts, sampling parameters) and what comes out (deltas).

These are plain dataclasses with no torch import so the server, the apps and the
scheduler's tests can use them without loading a model.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from llmeco.errors import InvalidRequest

FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation rendered with the model's own chat template before tokenization.

    ``tools`` (OpenAI tool definitions) are rendered into the prompt by
    :func:`llmeco.modeling.chat.render_chat`: through the template when it takes tools, else
    in the documented fallback format.
    """

    messages: list[dict[str, Any]]
    add_generation_prompt: bool = True
    tools: list[dict[str, Any]] | None = None


#: What ``EngineClient.generate`` accepts: raw text, token ids, or a chat.
Prompt = str | list[int] | ChatPrompt


@dataclass(frozen=True)
class ToolCallSpec:
    """The tool calls a generation may make (see :mod:`llmeco.engine.tool_grammar`).

    ``format`` is a tool parser's name (the text the calls are written in); ``tools`` pairs
    each callable function's name with its ``parameters`` schema. ``required``: calls only
    (else free text or calls); ``parallel``: more than one call allowed. ``content_schema``
    constrains the text alternative to JSON of that schema.
    """

    format: str
    tools: tuple[tuple[str, dict[str, Any]], ...]
    required: bool = False
    parallel: bool = True
    content_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class StructuredOutput:
    """Constrain generation so the text always parses: any JSON object, a JSON schema, or
    well-formed tool calls (``tool_calls``)."""

    kind: Literal["json_object", "json_schema", "tool_calls"]
    schema: dict[str, Any] | None = None
    tool_calls: ToolCallSpec | None = None


@dataclass
class SamplingParams:
    """How one request samples. Defaults follow the OpenAI API; unset means "off"."""

    n: int = 1
    max_tokens: int | None = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    include_stop_str_in_output: bool = False
    logprobs: int | None = None
    structured: StructuredOutput | None = None
    skip_special_tokens: bool = True
    #: Compute every prompt token even when its K/V is in the prefix cache (a request that
    #: needs logits at every prompt position, such as prompt logprobs, sets it).
    skip_prefix_cache: bool = False
    #: Logprobs of every prompt token (and this many top alternatives each); the first
    #: prompt token has none. Implies ``skip_prefix_cache``.
    prompt_logprobs: int | None = None
    #: OpenAI predicted outputs: text the output is expected to largely repeat; it becomes
    #: the request's speculative draft source (the output itself is unchanged). Token ids
    #: are taken as they are.
    prediction: str | list[int] | None = None

    def __post_init__(self) -> None:
        self.validate()
        if self.prompt_logprobs is not None:
            self.skip_prefix_cache = True

    @property
    def greedy(self) -> bool:
        """True when sampling reduces to argmax (temperature 0 or top_k 1)."""
        return self.temperature == 0.0 or self.top_k == 1

    def validate(self) -> None:
        """Reject values no engine could honour, naming the parameter (never clamp silently)."""
        checks: list[tuple[bool, str, str]] = [
            (1 <= self.n <= 128, "n", "n must be between 1 and 128"),
            (
                self.max_tokens is None or self.max_tokens >= 0,
                "max_tokens",
                "max_tokens must not be negative (0 scores the prompt only)",
            ),
            (
                self.prompt_logprobs is None or 0 <= self.prompt_logprobs <= 20,
                "prompt_logprobs",
                "prompt_logprobs must be between 0 and 20",
            ),
            (
                math.isfinite(self.temperature) and 0.0 <= self.temperature <= 100.0,
                "temperature",
                "temperature must be between 0 and 100",
            ),
            (0.0 < self.top_p <= 1.0, "top_p", "top_p must be in (0, 1]"),
            (self.top_k >= -1, "top_k", "top_k must be -1, 0 (off) or a positive number"),
            (0.0 <= self.min_p <= 1.0, "min_p", "min_p must be in [0, 1]"),
            (
                0.0 < self.repetition_penalty <= 10.0,
                "repetition_penalty",
                "repetition_penalty must be in (0, 10]",
            ),
            (
                -2.0 <= self.presence_penalty <= 2.0,
                "presence_penalty",
                "presence_penalty must be between -2 and 2",
            ),
            (
                -2.0 <= self.frequency_penalty <= 2.0,
                "frequency_penalty",
                "frequency_penalty must be between -2 and 2",
            ),
            (
                self.logprobs is None or 0 <= self.logprobs <= 20,
                "logprobs",
                "logprobs (top_logprobs) must be between 0 and 20",
            ),
            (len(self.stop) <= 16, "stop", "at most 16 stop strings"),
            (all(s for s in self.stop), "stop", "stop strings must not be empty"),
            (
                all(t >= 0 for t in self.stop_token_ids),
                "stop_token_ids",
                "stop token ids must be non-negative",
            ),
        ]
        for ok, param, message in checks:
            if not ok:
                raise InvalidRequest(message, param=param)


@dataclass(frozen=True)
class TokenLogprob:
    """Log-probability of one generated token and, when asked, the most likely alternatives."""

    token_id: int
    token: str
    logprob: float
    top: list[tuple[int, str, float]] = field(default_factory=list)
    #: 1-based rank of the token in its distribution (prompt logprobs report it).
    rank: int | None = None


@dataclass
class SequenceDelta:
    """What one of a request's ``n`` sequences produced since the previous delta."""

    index: int
    token_ids: list[int]
    text: str
    logprobs: list[TokenLogprob] | None = None
    finish_reason: FinishReason | None = None
    #: The stop string or stop token id that ended the sequence, if one did.
    stop_reason: str | int | None = None


@dataclass
class RequestOutput:
    """One item of a request's stream: deltas of the sequences that advanced this step."""

    request_id: str
    prompt_token_ids: list[int]
    deltas: list[SequenceDelta]
    #: True on the last item: every sequence of the request has finished.
    finished: bool = False
    #: Seconds spent waiting for admission, and arrival-to-first-token, once known.
    queue_time: float | None = None
    time_to_first_token: float | None = None
    #: Prompt tokens whose K/V came from the prefix cache instead of being computed.
    num_cached_tokens: int = 0
    #: With ``SamplingParams.prompt_logprobs``: one entry per prompt token (the first is
    #: None), on the request's first output only.
    prompt_logprobs: list[TokenLogprob | None] | None = None


class RequestStatus(enum.Enum):
    """Where a sequence is in its life; the scheduler moves it along."""

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
