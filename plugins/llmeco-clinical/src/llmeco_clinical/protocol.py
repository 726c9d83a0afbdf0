"""Request and response schemas of ``POST /v1/apps/clinical/analyze``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmeco.server.openai.shared import Usage


class AnalyzeRequest(BaseModel):
    """A clinical note to de-identify and analyse."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=100_000, description="The note's text.")
    extractor: Literal["rules", "llm", "combined"] = Field(
        default="combined",
        description="rules: lexicon and patterns only; llm: the model under a JSON schema; "
        "combined: the rules plus the model's grounded items.",
    )
    summary: Literal["llm", "template", "none"] = Field(
        default="llm", description="Who writes the summary: the model, a template, nobody."
    )
    model: str | None = Field(default=None, description="Served model; default: the first one.")
    max_tokens: int = Field(default=384, ge=32, le=2048, description="For the extraction.")
    summary_max_tokens: int = Field(default=120, ge=16, le=1024)


class PhiCount(BaseModel):
    """How many identifiers of one kind were removed."""

    kind: str
    count: int


class MedicationOut(BaseModel):
    """A medication with its dose and frequency ("" when the note does not say)."""

    name: str
    written_as: str
    dose: str
    frequency: str
    known: bool = Field(description="In the shipped drug lexicon.")
    source: str = Field(description="rules, llm or rules+llm.")


class FlagOut(BaseModel):
    """A dangerous combination."""

    drugs: list[str]
    severity: str
    warning: str


class AnalyzeResponse(BaseModel):
    """The de-identified note, the extracted facts, flags and summary."""

    id: str
    object: str = "clinical.analysis"
    model: str | None
    not_medical_advice: Literal[True] = True
    disclaimer: str
    redacted_note: str
    phi: list[PhiCount]
    problems: list[str]
    medications: list[MedicationOut]
    allergies: list[str]
    interactions: list[FlagOut]
    summary: str | None
    extractor: str
    usage: Usage | None = None
