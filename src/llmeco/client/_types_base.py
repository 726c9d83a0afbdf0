"""Bases of the client's request and response models (see :mod:`llmeco.client.types`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Request(BaseModel):
    """Base of request bodies: unknown fields are a bug in the client, so they are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Response(BaseModel):
    """Base of response bodies: fields a newer server adds are kept, not refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
