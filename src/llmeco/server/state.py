"""What every route of one app shares: settings, engines, the embedder, metrics.

Routers reach it through :func:`get_state`; per-request facts (request id, the model the
request turned out to be about) live in a :class:`RequestContext` that the middleware puts
in the ASGI scope.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import HTTPConnection

from llmeco.engine.protocol import EngineClient, EngineStats
from llmeco.errors import EngineDead, InvalidRequest, NotFound
from llmeco.observability.metrics import ServerMetrics
from llmeco.settings import Settings

if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder

_CONTEXT_KEY = "llmeco_context"


@dataclass
class RequestContext:
    """Facts about the request being served, filled in as it is handled."""

    request_id: str
    #: Served model name the request resolved to; labels its metrics ("" until known).
    model: str = ""
    #: The request's ``user`` field (OpenAI's end-user id), logged with the access line.
    user: str = ""


@dataclass
class ServerState:
    """The engines and helpers one app serves; created once by ``build_app``."""

    settings: Settings
    engines: dict[str, EngineClient]
    embedder: Embedder | None = None
    #: Other names clients may use for a served model: alias → served name.
    aliases: dict[str, str] = field(default_factory=dict)
    #: Set when the server begins a graceful shutdown: new work gets 503, /ready fails.
    draining: bool = False
    started: int = field(default_factory=lambda: int(time.time()))
    metrics: ServerMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = ServerMetrics(self.engine_stats)

    def engine_stats(self) -> dict[str, EngineStats]:
        """Each engine's current stats, by served name."""
        return {name: engine.stats() for name, engine in self.engines.items()}

    def embedder_names(self) -> tuple[str, ...]:
        """Names the embedding model answers to (first is the canonical one)."""
        if self.embedder is None:
            return ()
        return (self.embedder.name, *self.embedder.aliases)

    def available(self) -> str:
        """Comma-separated list of every served model, for error messages."""
        return ", ".join([*self.engines, *self.embedder_names()[:1]]) or "none"

    def _check_accepting(self) -> None:
        if self.draining:
            raise EngineDead("the server is shutting down; retry on another replica")

    def engine(self, model: str) -> tuple[str, EngineClient]:
        """Served name and engine for a requested model name; 404 when unknown."""
        self._check_accepting()
        name = self.aliases.get(model, model)
        engine = self.engines.get(name)
        if engine is not None:
            return name, engine
        if model in self.embedder_names():
            raise InvalidRequest(
                f"{model} is an embedding model; use /v1/embeddings", param="model"
            )
        raise NotFound(
            f"The model `{model}` does not exist. Available models: {self.available()}.",
            param="model",
        )

    def embedding_model(self, model: str) -> Embedder:
        """The embedder if ``model`` names it; 404 otherwise (400 for a chat model)."""
        self._check_accepting()
        if self.embedder is not None and model in self.embedder_names():
            return self.embedder
        if self.aliases.get(model, model) in self.engines:
            raise InvalidRequest(
                f"{model} is a generation model and does not serve embeddings", param="model"
            )
        raise NotFound(
            f"The model `{model}` does not exist. Available models: {self.available()}.",
            param="model",
        )


def get_state(conn: HTTPConnection) -> ServerState:
    """The app's :class:`ServerState`."""
    return cast(ServerState, conn.app.state.llmeco)


def get_context(conn: HTTPConnection) -> RequestContext:
    """This request's :class:`RequestContext` (set by the middleware)."""
    ctx = conn.scope.get(_CONTEXT_KEY)
    if ctx is None:  # called outside the middleware (e.g. a bare test app)
        from llmeco.observability.logging import new_request_id

        ctx = conn.scope[_CONTEXT_KEY] = RequestContext(new_request_id())
    return cast(RequestContext, ctx)


def set_context(scope: MutableMapping[str, Any], ctx: RequestContext) -> None:
    """Attach ``ctx`` to an ASGI scope (middleware only)."""
    scope[_CONTEXT_KEY] = ctx


def context_of(scope: MutableMapping[str, Any]) -> RequestContext | None:
    """The context attached to a scope, if any."""
    return cast("RequestContext | None", scope.get(_CONTEXT_KEY))
