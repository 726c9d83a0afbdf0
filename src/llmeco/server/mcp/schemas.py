"""The MCP tools' arguments and the JSON schemas the tools advertise.

Arguments are pydantic models (the task tools reuse the task endpoints' request models), so
a call is validated by exactly what its advertised schema is generated from.
:func:`input_schema` turns a model's schema into the plain form LLM clients handle best: no
titles, no ``$ref`` (definitions inlined), optional fields as their own type instead of
``anyOf [T, null]``, and no combinator at the top level (several LLM APIs refuse one there),
so a rule such as "``messages`` or ``prompt``" is stated in the description and checked here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

STRICT = ConfigDict(extra="forbid")


class NoArgs(BaseModel):
    """A tool without arguments."""

    model_config = STRICT


class SearchArgs(BaseModel):
    """Arguments of ``search_knowledge_base``."""

    model_config = STRICT
    kb: str = Field(min_length=1, max_length=200, description="Knowledge base to search.")
    query: str = Field(
        min_length=1,
        max_length=2000,
        description="What to look for: a question or keywords, in the documents' language.",
    )
    k: int = Field(default=5, ge=1, le=20, description="How many passages to return, best first.")


class ChatMessage(BaseModel):
    """One message of a conversation."""

    model_config = STRICT
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1, max_length=32_000)


class ChatArgs(BaseModel):
    """Arguments of ``chat``: a conversation or a single prompt."""

    model_config = STRICT
    model: str | None = Field(default=None, description="Served model; default: the first one.")
    messages: list[ChatMessage] | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The conversation so far, oldest first. Give this or `prompt`, not both.",
    )
    prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=32_000,
        description="A single user message. Give this or `messages`, not both.",
    )
    system: str | None = Field(
        default=None,
        min_length=1,
        max_length=8000,
        description="Instructions put first as a system message.",
    )
    max_tokens: int | None = Field(
        default=None, ge=1, le=8192, description="Longest answer; default: 512, within the context."
    )
    temperature: float = Field(
        default=1.0, ge=0.0, le=2.0, description="Sampling temperature; 0 is deterministic."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ChatArgs:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of `messages` and `prompt`")
        return self

    def conversation(self) -> list[dict[str, str]]:
        """The chat messages to send: ``system`` first, then the messages or the prompt."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        if self.messages is not None:
            out += [{"role": m.role, "content": m.content} for m in self.messages]
        else:
            out.append({"role": "user", "content": self.prompt or ""})
        return out


def input_schema(
    model: type[BaseModel],
    *,
    enums: Mapping[str, Sequence[str]] | None = None,
    describe: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON schema of ``model``'s fields in plain form (see the module doc).

    ``enums`` restricts string properties to known values (skipped when there are none);
    ``describe`` replaces properties' descriptions.
    """
    raw = model.model_json_schema(by_alias=True)
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _plain(raw, defs)
    schema.pop("description", None)  # the tool's own description says it better
    schema["type"] = "object"
    schema.setdefault("properties", {})
    schema["additionalProperties"] = False
    props: dict[str, dict[str, Any]] = schema["properties"]
    for name, values in (enums or {}).items():
        if values:
            props[name]["enum"] = list(dict.fromkeys(values))
    for name, text in (describe or {}).items():
        props[name]["description"] = text
    return schema


def _plain(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` without titles and ``$ref``s, with ``anyOf [T, null]`` collapsed to ``T``."""
    if isinstance(node, list):
        return [_plain(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _plain({**defs[ref.removeprefix("#/$defs/")], **_without(node, "$ref")}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key == "properties":
            out[key] = {name: _plain(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _plain(value, defs)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        (kept,) = [o for o in options if o != {"type": "null"}]
        out = {**kept, **_without(out, "anyOf")}
        if out.get("default", 0) is None:
            del out["default"]
    return out


def _without(node: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != key}
