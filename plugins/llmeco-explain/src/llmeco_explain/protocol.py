"""Request and response models of ``POST /v1/apps/explain``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmeco.server.openai.shared import Usage

MethodField = Annotated[
    Literal["integrated_gradients", "occlusion"],
    Field(description="Attribution method: integrated gradients on the embeddings, or occlusion."),
]


class _Common(BaseModel):
    """Fields both kinds share: the model and how to attribute."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        max_length=256,
        description="A trained classifier (`--classifier`) or a served generation model.",
    )
    method: MethodField = "integrated_gradients"
    steps: int = Field(32, ge=2, le=256, description="Integrated gradients: interpolation steps.")
    baseline: Literal["pad", "zeros"] = Field(
        "pad", description="Integrated gradients: the pad token's embedding, or zeros."
    )
    window: int = Field(1, ge=1, le=16, description="Occlusion: tokens hidden at a time.")
    occlusion: Literal["delete", "mask"] = Field(
        "delete", description="Occlusion: remove the window, or replace it by the pad token."
    )


class ClassificationExplainRequest(_Common):
    """Explain a label: a trained classifier's, or a generation model's given ``labels``."""

    kind: Literal["classification"]
    input: str = Field(min_length=1, max_length=20_000, description="The text to classify.")
    labels: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None,
        min_length=2,
        max_length=20,
        description="Labels for a generation model (a trained classifier brings its own).",
    )
    target_label: str | None = Field(
        None, max_length=100, description="Explain this label instead of the predicted one."
    )


class ChatTurn(BaseModel):
    """One chat message (text only)."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=20_000)


class GenerationExplainRequest(_Common):
    """Explain a generated answer: the engine answers, then its tokens are attributed."""

    kind: Literal["generation"]
    messages: list[ChatTurn] | None = Field(None, min_length=1, max_length=32)
    prompt: str | None = Field(
        None, min_length=1, max_length=20_000, description="Shorthand for one user message."
    )
    max_tokens: int = Field(32, ge=1, le=256)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_logprobs: int = Field(5, ge=0, le=20, description="Alternatives shown per token.")
    target: Literal["sequence", "first_token"] = Field(
        "sequence", description="Explain the whole answer's log-probability or its first token's."
    )


ExplainRequest = Annotated[
    ClassificationExplainRequest | GenerationExplainRequest, Field(discriminator="kind")
]


class Alternative(BaseModel):
    """A token the model could have produced instead, with its log-probability."""

    token: str
    logprob: float


class AnswerToken(BaseModel):
    """One generated token: its log-probability and the top alternatives."""

    token: str
    logprob: float
    top_logprobs: list[Alternative]


class Answer(BaseModel):
    """The generated answer of a generation explanation."""

    text: str
    finish_reason: str | None
    tokens: list[AnswerToken]
    #: Sum of the tokens' log-probabilities as the engine sampled them.
    logprob: float


class Target(BaseModel):
    """What the scores explain."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(description="label, label_answer, sequence or first_token")
    unit: str = Field(description="probability or logprob")
    value: float = Field(description="The target on the real input.")
    label: str | None = None
    text: str | None = None


class ExplainResponse(BaseModel):
    """Attributions over the input tokens (``tokens`` and ``scores`` run in parallel)."""

    id: str
    object: Literal["explanation"] = "explanation"
    model: str
    kind: Literal["classification", "generation"]
    method: str
    target: Target
    tokens: list[str] = Field(description="The input's tokens as text; they join to the input.")
    scores: list[float] = Field(description="One attribution per token (positive: supports).")
    segments: list[int] = Field(description="Which user message each token belongs to.")
    baseline_value: float | None = None
    completeness_delta: float | None = Field(
        None, description="Integrated gradients: sum(scores) - (value - baseline_value)."
    )
    steps: int | None = None
    label: str | None = None
    probabilities: dict[str, float] | None = None
    answer: Answer | None = None
    usage: Usage
