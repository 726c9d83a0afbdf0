"""Schemas of the admin API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

FORBID = ConfigDict(extra="forbid")


class CreateKeyRequest(BaseModel):
    """A new key; it can hold at most what the calling key holds."""

    model_config = FORBID
    name: str = Field(min_length=1, max_length=200, description="What the key is for.")
    scopes: list[str] = Field(
        min_length=1, description="chat, completions, embeddings, models, admin."
    )
    models: list[str] = Field(default_factory=list, description="Allow-list; empty = all.")
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute; null = none.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per minute; null = none.")
    daily_tokens: int | None = Field(
        default=None, ge=1, description="Tokens per UTC day; null = no budget."
    )
    expires_in: str | None = Field(
        default=None, description="Lifetime such as 30d, 12h, 2w; null = never expires."
    )


class UpdateLimitsRequest(BaseModel):
    """New limits; fields left out keep their value, null removes the limit."""

    model_config = FORBID
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    daily_tokens: int | None = Field(default=None, ge=1)


class KeyInfo(BaseModel):
    """A key as the API shows it (never its secret or hash)."""

    id: str
    name: str
    scopes: list[str]
    models: list[str]
    rpm: int | None
    tpm: int | None
    daily_tokens: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by: str
    status: str


class CreatedKey(KeyInfo):
    """A new key, with its secret — shown this once."""

    key: str = Field(description="The API key; store it now, it cannot be shown again.")


class KeyList(BaseModel):
    """Keys the caller may manage."""

    object: str = "list"
    data: list[KeyInfo]


class KeyUsage(BaseModel):
    """One key's usage on one UTC day: the counter its limits enforce."""

    key_id: str
    name: str
    day: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    requests: int
    daily_tokens: int | None = Field(description="The key's daily budget (null = none).")
    remaining_tokens: int | None


class UsageList(BaseModel):
    """Usage of the keys the caller may see."""

    object: str = "list"
    data: list[KeyUsage]


class AliasRequest(BaseModel):
    """Point a serving alias at a served model."""

    model_config = FORBID
    model: str = Field(min_length=1)


class AliasInfo(BaseModel):
    """One serving alias."""

    alias: str
    model: str
