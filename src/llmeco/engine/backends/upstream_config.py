"""What an upstream is: the YAML ``upstreams:`` list and the ``--upstream`` CLI option.

::

    upstreams:
      - name: small            # the model name clients send
        urls: [http://127.0.0.1:8001/v1, http://127.0.0.1:8002/v1]
        model: default         # the name sent upstream (default: name)
        api_key_env: UPSTREAM_KEY
        timeout: 60            # seconds, connect and read
        owned_by: vllm-cluster
        fallbacks: [other]

``--upstream NAME=URL[,URL…]`` is the same entry with every other field at its default.
A URL is an OpenAI base URL (``http://host:port/v1``); one with an empty path gets ``/v1``.
Every problem is a ``ConfigError`` naming the field (``upstreams[0].timeout: …``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmeco.errors import ConfigError


def normalize_url(url: str) -> str:
    """An OpenAI base URL without a trailing slash; an empty path becomes ``/v1``.

    Raises ``ValueError`` for anything but an absolute http(s) URL with a host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL like http://host:port/v1")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r} must not have a query or fragment")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class UpstreamSpec(BaseModel):
    """One model served by another OpenAI-compatible server, on one or more URLs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="The model name clients send.")
    urls: list[str] = Field(min_length=1, description="OpenAI base URLs (``…/v1``).")
    model: str | None = Field(default=None, description="The name sent upstream (default: name).")
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the upstream's API key."
    )
    timeout: float = Field(default=60.0, gt=0, description="Connect and read timeout, seconds.")
    owned_by: str | None = Field(default=None, description="``owned_by`` in /v1/models.")
    fallbacks: list[str] = Field(
        default_factory=list, description="Upstreams tried, in order, when every URL fails."
    )
    retries: int = Field(default=2, ge=0, le=10, description="Retries before the first byte.")
    backoff: float = Field(default=0.1, ge=0, description="First retry delay; doubles each try.")
    failure_threshold: int = Field(
        default=3, ge=1, description="Consecutive failures that open a URL's circuit breaker."
    )
    cooldown: float = Field(
        default=10.0, gt=0, description="Seconds an ejected URL waits before a health probe."
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value != value.strip() or any(c.isspace() for c in value):
            raise ValueError("must not contain whitespace")
        return value

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        urls = [normalize_url(u) for u in value]
        if len(set(urls)) != len(urls):
            raise ValueError("lists the same URL twice")
        return urls

    @model_validator(mode="after")
    def _no_self_fallback(self) -> UpstreamSpec:
        if self.name in self.fallbacks:
            raise ValueError(f"fallbacks: {self.name!r} cannot be its own fallback")
        return self

    @property
    def upstream_model(self) -> str:
        """The model name sent to the upstream server."""
        return self.model or self.name

    @property
    def owner(self) -> str:
        """``owned_by`` of this model in ``/v1/models`` (default: the upstream's name)."""
        return self.owned_by or self.name

    def api_key(self) -> str | None:
        """The upstream API key from ``api_key_env`` (never logged); ConfigError if unset."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ConfigError(
                f"upstream {self.name!r}: environment variable {self.api_key_env} "
                "(api_key_env) is not set"
            )
        return value


class UpstreamsConfig(BaseModel):
    """Every upstream the gateway serves; names are unique and fallbacks name upstreams."""

    model_config = ConfigDict(extra="forbid")

    upstreams: list[UpstreamSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> UpstreamsConfig:
        names = [u.name for u in self.upstreams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"upstream names must be unique; repeated: {', '.join(dupes)}")
        for u in self.upstreams:
            unknown = [f for f in u.fallbacks if f not in names]
            if unknown:
                raise ValueError(
                    f"upstream {u.name!r}: fallbacks name unknown upstreams: {', '.join(unknown)}"
                )
        return self

    def by_name(self) -> dict[str, UpstreamSpec]:
        """The upstreams by client-facing model name."""
        return {u.name: u for u in self.upstreams}

    def merged(self, other: UpstreamsConfig) -> UpstreamsConfig:
        """Both lists in one config (validated again: names must stay unique)."""
        return parse_config(
            {"upstreams": [*self.model_dump()["upstreams"], *other.model_dump()["upstreams"]]}
        )


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(raw: Any, source: str = "models config") -> UpstreamsConfig:
    """Validate a parsed YAML/JSON document; ConfigError naming each bad field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with an `upstreams:` list")
    try:
        return UpstreamsConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = _where(tuple(err.get("loc", ())))
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{where}: {msg}" if where else msg)
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def load_config(path: Path) -> UpstreamsConfig:
    """Read and validate a ``--models-config`` YAML file."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read models config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(raw, str(path))


def parse_upstream_option(value: str, api_key_env: str | None = None) -> UpstreamSpec:
    """``NAME=URL[,URL…]`` (the ``--upstream`` option) → an upstream with default settings."""
    name, sep, urls = value.partition("=")
    if not sep or not name.strip() or not urls.strip():
        raise ConfigError(f"--upstream {value!r}: expected NAME=URL[,URL…]")
    raw = {
        "name": name.strip(),
        "urls": [u for u in urls.split(",") if u.strip()],
        "api_key_env": api_key_env,
    }
    config = parse_config({"upstreams": [raw]}, f"--upstream {value!r}")
    return config.upstreams[0]


def config_from_options(
    options: list[str], api_key_env: str | None, config_file: Path | None
) -> UpstreamsConfig:
    """The upstreams of ``--upstream`` options and a ``--models-config`` file together."""
    config = load_config(config_file) if config_file is not None else UpstreamsConfig()
    specs = [parse_upstream_option(o, api_key_env) for o in options]
    return config.merged(UpstreamsConfig(upstreams=specs)) if specs else config
