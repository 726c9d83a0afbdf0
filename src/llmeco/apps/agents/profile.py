"""Agent profiles: what an agent is, read from YAML and validated before a server starts.

A profile names the served model the agent thinks with, its system prompt, the tools it may
call and how long it may go on::

    name: helper                  # served as model "agent:helper"
    model: default                # a served model or alias (default: the first served)
    system: You answer questions about the ACME handbook. Search it first.
    tools:
      - kb_search: {kb: handbook, k: 3}
      - calculator
      - classify: {labels: [billing, shipping, other]}
    mcp:
      - name: orders
        command: [python, orders_server.py]
        tools: [lookup_order]     # a subset of the server's tools (default: all)
      - name: wiki
        url: https://wiki.example/mcp
        headers: {Authorization: "Bearer ${WIKI_TOKEN}"}
    max_steps: 4                  # model turns; then finish_reason "max_steps"
    tool_timeout: 20              # seconds per tool call (a tool's own `timeout` wins)
    temperature: 0
    max_tokens: 256               # per model turn
    tool_choice: auto             # "required": the first turn must call a tool

A bad profile is a :class:`~llmeco.errors.ConfigError` naming the file and the field
(``agent profile a.yaml: tools.0.kb_search.k: Input should be less than or equal to 20``).
``${NAME}`` in an MCP server's ``headers``, ``env`` or ``url`` is replaced by the environment
variable (a missing one is an error), so secrets stay out of the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from llmeco.errors import ConfigError
from llmeco.plugins import get_registry

#: Tool and server names: what OpenAI-style function names allow.
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
#: Agent names (``agent:<name>``).
AGENT_NAME_PATTERN = r"^[a-zA-Z0-9_.-]{1,64}$"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolOptions(_Strict):
    """Options every tool takes; a plugin's tool options subclass this with
    ``kind: Literal["its_kind"]``."""

    #: Which tool (a built-in kind or one a plugin registers).
    kind: str = Field(min_length=1)

    #: The name the model calls it by (default: the tool's own, e.g. ``kb_search``).
    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    #: Replaces the built-in description the model reads.
    description: str | None = Field(default=None, min_length=1, max_length=1000)
    #: Seconds one call may take (default: the profile's ``tool_timeout``).
    timeout: float | None = Field(default=None, gt=0, le=600)


class KbSearchOptions(ToolOptions):
    """``kb_search``: passages of one knowledge base."""

    kind: Literal["kb_search"]
    kb: str = Field(min_length=1, max_length=128)
    k: int = Field(default=4, ge=1, le=20)


class CalculatorOptions(ToolOptions):
    """``calculator``: arithmetic."""

    kind: Literal["calculator"]


class SummarizeOptions(ToolOptions):
    """``summarize``: the summarize task."""

    kind: Literal["summarize"]
    max_words: int = Field(default=60, ge=5, le=1000)
    style: Literal["paragraph", "bullets"] = "paragraph"
    max_tokens: int | None = Field(default=None, ge=1, le=4096)


class TranslateOptions(ToolOptions):
    """``translate``: the translate task (a fixed target language, or the model picks)."""

    kind: Literal["translate"]
    target_language: str | None = Field(default=None, min_length=1, max_length=64)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)


class ClassifyOptions(ToolOptions):
    """``classify``: pick one of fixed labels."""

    kind: Literal["classify"]
    labels: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=2, max_length=50
    )
    instructions: str | None = Field(default=None, max_length=2000)

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be distinct")
        return labels


class SentimentOptions(ToolOptions):
    """``sentiment``: positive, negative or neutral."""

    kind: Literal["sentiment"]


class CorrectOptions(ToolOptions):
    """``correct``: fix spelling and grammar."""

    kind: Literal["correct"]
    max_tokens: int | None = Field(default=None, ge=1, le=4096)


BuiltinTool = Annotated[
    KbSearchOptions
    | CalculatorOptions
    | SummarizeOptions
    | TranslateOptions
    | ClassifyOptions
    | SentimentOptions
    | CorrectOptions,
    Field(discriminator="kind"),
]

#: Every built-in tool kind.
BUILTIN_KINDS = (
    "kb_search",
    "calculator",
    "summarize",
    "translate",
    "classify",
    "sentiment",
    "correct",
)


class McpServerSpec(_Strict):
    """One MCP server whose tools the agent may call: a command (stdio) or a URL
    (streamable HTTP)."""

    name: str = Field(pattern=NAME_PATTERN)
    command: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    #: The tools offered to the model (default: every tool the server lists).
    tools: list[Annotated[str, Field(min_length=1)]] | None = None
    #: Seconds one call of its tools may take (default: the profile's ``tool_timeout``).
    timeout: float | None = Field(default=None, gt=0, le=600)
    #: Seconds to start the server (or reach it) and list its tools.
    connect_timeout: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of command (stdio) or url (streamable HTTP)")
        if self.url is not None and (self.env or self.cwd):
            raise ValueError("env and cwd are for command servers; a url server takes headers")
        if self.command is not None and self.headers:
            raise ValueError("headers are for url servers")
        return self


class AgentProfile(_Strict):
    """One agent, as its YAML file describes it (see the module doc)."""

    name: str = Field(pattern=AGENT_NAME_PATTERN)
    model: str | None = Field(default=None, min_length=1)
    system: str = Field(default="", max_length=20_000)
    #: Built-in tool kinds (:data:`BUILTIN_KINDS`) or any kind a plugin registers.
    tools: list[SerializeAsAny[ToolOptions]] = Field(default_factory=list)
    mcp: list[McpServerSpec] = Field(default_factory=list)
    max_steps: int = Field(default=5, ge=1, le=50)
    tool_timeout: float = Field(default=30.0, gt=0, le=600)
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=1, le=32_768)
    #: ``required``: the first model turn must call a tool (later turns are ``auto``, or the
    #: agent could never answer). For small models that do not call tools on their own.
    tool_choice: Literal["auto", "required"] = "auto"
    #: Let one model turn make several calls.
    parallel_tool_calls: bool = False

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_kinds(cls, value: Any) -> Any:
        """Each entry validated by the options model of its ``kind`` (plugin registry)."""
        if not isinstance(value, list):
            return value
        kinds = get_registry().tools()
        out: list[Any] = []
        for i, item in enumerate(value):
            if isinstance(item, ToolOptions):
                out.append(item)
                continue
            kind = item.get("kind") if isinstance(item, dict) else None
            spec = kinds.get(kind) if isinstance(kind, str) else None
            if spec is None:
                raise PydanticCustomError(
                    "tool_kind",
                    "entry {i}: unknown tool kind '{kind}'; known kinds: {known}",
                    {"i": i, "kind": kind, "known": ", ".join(sorted(kinds))},
                )
            try:
                out.append(spec.options.model_validate(item))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or kind}: {e['msg']}"
                    for e in exc.errors()
                )
                raise PydanticCustomError(
                    "tool_options",
                    "entry {i} ({kind}): {problems}",
                    {"i": i, "kind": kind, "problems": problems},
                ) from None
        return out

    @field_validator("tools", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``calculator`` / ``{kb_search: {kb: x}}`` / a mapping of names to options →
        ``{"kind": ..., **options}`` items."""
        if isinstance(value, dict):
            value = [{name: options} for name, options in value.items()]
        if not isinstance(value, list):
            return value
        out: list[Any] = []
        for item in value:
            if isinstance(item, str):
                out.append({"kind": item})
            elif isinstance(item, dict) and len(item) == 1 and "kind" not in item:
                ((kind, options),) = item.items()
                if options is None:
                    options = {}
                out.append({"kind": kind, **options} if isinstance(options, dict) else item)
            else:
                out.append(item)
        return out

    @model_validator(mode="after")
    def _distinct_names(self) -> AgentProfile:
        names = [tool.name or tool.kind for tool in self.tools]
        servers = [server.name for server in self.mcp]
        for label, seen in (("tool", names), ("mcp server", servers)):
            twice = sorted({n for n in seen if seen.count(n) > 1})
            if twice:
                raise ValueError(
                    f"two {label}s are named {', '.join(twice)}; give one a different `name`"
                )
        return self

    @property
    def source(self) -> Path | None:
        """The file the profile was read from (None when built in code)."""
        return self._source

    @property
    def model_name(self) -> str:
        """The name the agent is served as: ``agent:<name>``."""
        return AGENT_PREFIX + self.name

    def where(self) -> str:
        """How error messages name the profile: its file, else its name."""
        return str(self._source) if self._source is not None else f"agent {self.name!r}"


#: Model names of agents: ``agent:<name>``.
AGENT_PREFIX = "agent:"


def expand_env(text: str, where: str) -> str:
    """``text`` with every ``${NAME}`` replaced by that environment variable.

    Raises:
        ConfigError: a variable is not set (the message names it and ``where``).
    """

    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if found is None:
            raise ConfigError(f"{where}: environment variable {match.group(1)} is not set")
        return found

    return _ENV_REF.sub(value, text)


def load_profile(path: Path) -> AgentProfile:
    """Read and validate one profile file.

    Raises:
        ConfigError: unreadable file, bad YAML, or an invalid field (the message names the file
            and each bad field as a dotted path).
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"agent profile {path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"agent profile {path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"agent profile {path}: must be a mapping with at least `name`")
    try:
        profile = AgentProfile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'profile'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"agent profile {path}: {problems}") from None
    profile._source = path
    return profile


def profile_files(paths: Iterable[Path]) -> list[Path]:
    """Each path as profile files: a file as itself, a directory as its ``*.yaml`` and
    ``*.yml`` files (sorted).

    Raises:
        ConfigError: a path does not exist.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"agent profile {path} does not exist")
    return files


def load_profiles(paths: Sequence[Path]) -> list[AgentProfile]:
    """Every profile under ``paths`` (files or directories); names must be distinct.

    Raises:
        ConfigError: a bad profile, or two profiles with one name (naming both files).
    """
    profiles: dict[str, AgentProfile] = {}
    for path in profile_files(paths):
        profile = load_profile(path)
        other = profiles.get(profile.name)
        if other is not None:
            raise ConfigError(
                f"agent profile {path}: name {profile.name!r} is already used by {other.where()}"
            )
        profiles[profile.name] = profile
    return list(profiles.values())
