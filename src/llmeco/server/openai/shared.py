"""Request and response pieces that chat and completions share.

Request models forbid unknown fields: an OpenAI parameter we do not implement is rejected
with a 400 naming it, never silently ignored (a client that sets ``n`` or ``tool_choice``
must not get a response that quietly did something else). They are also strict, so
``"n": "2"`` is a type error rather than a guess.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmeco.engine.request import SamplingParams, StructuredOutput
from llmeco.errors import InvalidRequest

STRICT = ConfigDict(extra="forbid", strict=True)


class StreamOptions(BaseModel):
    """Options for streamed responses."""

    model_config = STRICT
    include_usage: bool = Field(
        default=False, description="Send a last chunk with token usage and no choices."
    )


class ResponseFormatText(BaseModel):
    """Free text (the default)."""

    model_config = STRICT
    type: Literal["text"]


class ResponseFormatJsonObject(BaseModel):
    """Any valid JSON object."""

    model_config = STRICT
    type: Literal["json_object"]


class JsonSchemaSpec(BaseModel):
    """A named JSON schema the output must satisfy."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatJsonSchema(BaseModel):
    """JSON that validates against ``json_schema.schema``."""

    model_config = STRICT
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema,
    Field(discriminator="type"),
]


class PromptTokensDetails(BaseModel):
    """Breakdown of the prompt tokens (OpenAI's ``usage.prompt_tokens_details``)."""

    cached_tokens: int = Field(
        default=0, description="Prompt tokens served from the prefix cache, not recomputed."
    )


class Usage(BaseModel):
    """Exact token counts of a request."""

    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = Field(
        default=None, exclude_if=lambda v: v is None
    )


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None) -> Usage:
    """A :class:`Usage` with the total filled in; ``cached_tokens`` (chat and completions)
    adds ``prompt_tokens_details``."""
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details=(
            None if cached_tokens is None else PromptTokensDetails(cached_tokens=cached_tokens)
        ),
    )


class PredictionText(BaseModel):
    """One text part of a predicted output."""

    model_config = STRICT

    type: Literal["text"] = "text"
    text: str


class Prediction(BaseModel):
    """OpenAI predicted outputs: text the answer will largely repeat (an edit of a file, a
    corrected paragraph). It drafts tokens for speculative decoding; the output is the same
    as without it, only faster when the prediction is right."""

    model_config = STRICT

    type: Literal["content"] = "content"
    content: str | list[PredictionText]

    def text(self) -> str:
        """The prediction as one string."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class SamplingRequest(BaseModel):
    """Fields of chat and completions requests that become :class:`SamplingParams`."""

    model_config = STRICT

    model: str = Field(description="Served model name (see /v1/models).")
    n: int = Field(default=1, ge=1, le=128, description="Choices to generate.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="0 is greedy.")
    top_p: float | None = Field(default=None, gt=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: str | list[str] | None = Field(default=None, description="Up to 16 stop strings.")
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, description="End-user id; logged with the request.")
    logit_bias: dict[str, float] | None = Field(
        default=None, description="Not supported: only null or {} are accepted."
    )
    response_format: ResponseFormat | None = None
    # vLLM's extra sampling parameters.
    top_k: int | None = Field(default=None, ge=-1, description="0 or -1 turns it off.")
    min_p: float | None = Field(default=None, ge=0, le=1)
    repetition_penalty: float | None = Field(default=None, gt=0, le=10)
    stop_token_ids: list[int] | None = Field(default=None, max_length=64)
    ignore_eos: bool = False
    prompt_logprobs: int | None = Field(
        default=None, ge=0, le=20, description="vLLM: logprobs of every prompt token (+ top N)."
    )
    prediction: Prediction | None = Field(
        default=None, description="OpenAI predicted outputs: a speculative draft source."
    )

    def check(self, vocab_size: int) -> None:
        """Reject combinations the schema cannot express, naming the parameter."""
        if self.stream_options is not None and not self.stream:
            raise InvalidRequest(
                "stream_options is only allowed when stream is true", param="stream_options"
            )
        if self.logit_bias:
            raise InvalidRequest("logit_bias is not supported by this server", param="logit_bias")
        for t in self.stop_token_ids or []:
            if not 0 <= t < vocab_size:
                raise InvalidRequest(
                    f"stop token id {t} is outside the vocabulary (0..{vocab_size - 1})",
                    param="stop_token_ids",
                )

    @property
    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)

    def structured(self) -> StructuredOutput | None:
        """The engine's constraint for ``response_format``."""
        fmt = self.response_format
        if isinstance(fmt, ResponseFormatJsonObject):
            return StructuredOutput("json_object")
        if isinstance(fmt, ResponseFormatJsonSchema):
            if fmt.json_schema.schema_ is None:
                raise InvalidRequest(
                    "response_format.json_schema.schema is required",
                    param="response_format.json_schema.schema",
                )
            return StructuredOutput("json_schema", fmt.json_schema.schema_)
        return None

    def sampling_params(self, max_tokens: int, logprobs: int | None) -> SamplingParams:
        """Engine sampling parameters; unset fields keep the OpenAI defaults."""
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            n=self.n,
            max_tokens=max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            top_k=max(0, self.top_k or 0),
            min_p=self.min_p or 0.0,
            repetition_penalty=self.repetition_penalty or 1.0,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            seed=None if self.seed is None else self.seed % 2**63,
            stop=stop,
            stop_token_ids=list(self.stop_token_ids or []),
            ignore_eos=self.ignore_eos,
            logprobs=logprobs,
            structured=self.structured(),
            prompt_logprobs=self.prompt_logprobs,
            prediction=self.prediction.text() if self.prediction is not None else None,
        )
