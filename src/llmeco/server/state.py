"""What every route of one app shares: settings, engines, the embedder, metrics, and the
governance and app services the server was started with.

Routers reach it through :func:`get_state` (a FastAPI dependency); per-request facts (request
id, the model the request turned out to be about) live in a :class:`RequestContext` that the
middleware puts in the ASGI scope.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from starlette.requests import HTTPConnection

from llmeco.engine.protocol import EngineClient, EngineStats
from llmeco.errors import EngineDead, InvalidRequest, NotFound
from llmeco.observability.metrics import ServerMetrics
from llmeco.settings import Settings

if TYPE_CHECKING:
    from llmeco.apps.classifier import ServedClassifier
    from llmeco.apps.speech.service import SpeechService
    from llmeco.apps.support.desk import SupportDesk
    from llmeco.governance.audit import AuditLedger
    from llmeco.rag.embed import Embedder
    from llmeco.server.auth import Authenticator
    from llmeco.server.chat_backends import ChatBackend
    from llmeco.server.gateway.serving import UpstreamGateway
    from llmeco.server.hotswap import ModelFollower

_CONTEXT_KEY = "llmeco_context"


class RequestGuard(Protocol):
    """Governance of the request being served (the auth layer's, see ``server/auth.py``).

    The server calls it where models are resolved and tokens are counted, without knowing
    about keys or limits; with auth off there is none.
    """

    def check_model(self, names: set[str]) -> None:
        """Raise ``PermissionDenied`` unless the key may use the model known by ``names``."""
        ...

    def allows_model(self, names: set[str]) -> bool:
        """Whether the key may use (and see) the model known by ``names``."""
        ...

    async def reserve(self, tokens: int, *, room: int = 1) -> int | None:
        """Charge input tokens before a call (429 when over a limit); daily tokens left."""
        ...

    async def consume(self, tokens: int) -> int | None:
        """Charge output tokens as they stream; daily tokens left (None: no budget)."""
        ...

    async def refund(self, tokens: int) -> None:
        """Give back input tokens of a call that never ran."""
        ...


#: The current request's guard; set by the auth middleware for the request's duration.
request_guard: ContextVar[RequestGuard | None] = ContextVar("llmeco_request_guard", default=None)


@dataclass
class RequestContext:
    """Facts about the request being served, filled in as it is handled."""

    request_id: str
    #: Served model name the request resolved to; labels its metrics ("" until known).
    model: str = ""
    #: The request's ``user`` field (OpenAI's end-user id), logged with the access line.
    user: str = ""
    #: Token counts for the audit ledger when the response body carries none (a relayed
    #: upstream stream whose client did not ask for usage).
    usage: dict[str, int] | None = None
    #: The limit that refused the request with 429 (rpm, tpm, daily_budget, queue), for
    #: the per-key rejection metric; set by the error handler.
    limit: str = ""


@dataclass
class ServerState:
    """The engines and services one app serves; created once by ``build_app``.

    Engines are :class:`~llmeco.engine.protocol.EngineClient` objects; each request gets its
    own through ``acquire()`` (a plain engine itself, a hot-swappable slot a lease), so the
    server never knows which kind it holds.
    """

    settings: Settings
    engines: dict[str, EngineClient]
    embedder: Embedder | None = None
    #: Other names clients may use for a served model: alias → served name.
    aliases: dict[str, str] = field(default_factory=dict)
    #: The support assistant's desk (knowledge bases, conversation log); None when off.
    support: SupportDesk | None = None
    #: Trained classifiers by name (``model`` of /v1/tasks/classify and /sentiment).
    classifiers: dict[str, ServedClassifier] = field(default_factory=dict)
    #: Keys and limits (None: auth is off — loopback development and tests).
    auth: Authenticator | None = None
    #: The audit ledger every request and admin action is appended to (None: off).
    ledger: AuditLedger | None = None
    #: Hot swap of models served from ``NAME@alias`` (None: not started with slots).
    follower: ModelFollower | None = None
    #: Chat backends by model-name prefix (``support:`` …): ``/v1/chat/completions`` hands
    #: a request whose model starts with a prefix to that backend.
    chat_backends: dict[str, ChatBackend] = field(default_factory=dict)
    #: Models relayed to other OpenAI-compatible servers (``--upstream``), matched by exact
    #: name on chat, completions and embeddings; None when the server has none.
    gateway: UpstreamGateway | None = None
    #: Speech-to-text and text-to-speech models (``/v1/audio/*``, the voice desk); None: off.
    speech: SpeechService | None = None
    #: Set when the server begins a graceful shutdown: new work gets 503, /ready fails.
    draining: bool = False
    started: int = field(default_factory=lambda: int(time.time()))
    metrics: ServerMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = ServerMetrics(self.engine_stats, self.settings.max_queue)

    def engine_stats(self) -> dict[str, EngineStats]:
        """Each engine's current stats, by served name."""
        return {name: engine.stats() for name, engine in self.engines.items()}

    def embedder_names(self) -> tuple[str, ...]:
        """Names the embedding model answers to (first is the canonical one)."""
        if self.embedder is None:
            return ()
        return (self.embedder.name, *self.embedder.aliases)

    def names_of(self, name: str) -> set[str]:
        """Every name a served model answers to: its own and its aliases."""
        if name in self.embedder_names():
            return set(self.embedder_names())
        return {name, *(a for a, n in self.aliases.items() if n == name)}

    def visible(self, name: str) -> bool:
        """Whether the current request's key may see model ``name`` (always, without auth)."""
        guard = request_guard.get()
        return guard is None or guard.allows_model(self.names_of(name))

    def check_model(self, name: str) -> None:
        """403 unless the current request's key may use served model ``name``."""
        guard = request_guard.get()
        if guard is not None:
            guard.check_model(self.names_of(name))

    def available(self) -> str:
        """Comma-separated list of every served model the caller may see, for errors."""
        names = [*self.engines, *self.embedder_names()[:1]]
        if self.gateway is not None:
            names += self.gateway.upstreams.names()
        return ", ".join(n for n in names if self.visible(n)) or "none"

    def _check_accepting(self) -> None:
        if self.draining:
            raise EngineDead("the server is shutting down; retry on another replica")

    def engine(self, model: str) -> tuple[str, EngineClient]:
        """Served name and engine for a requested model name; 404 when unknown.

        A hot-swappable model gives a lease on its current engine, so the whole request
        runs on one version even if the model is swapped meanwhile.
        """
        self._check_accepting()
        name = self.aliases.get(model, model)
        engine = self.engines.get(name)
        if engine is not None:
            guard = request_guard.get()
            if guard is not None:
                guard.check_model(self.names_of(name) | {model})
            return name, engine.acquire()
        if model in self.embedder_names():
            raise InvalidRequest(
                f"{model} is an embedding model; use /v1/embeddings", param="model"
            )
        if self.gateway is not None and self.gateway.serves(model):
            raise InvalidRequest(
                f"{model} is served by an upstream server: only /v1/chat/completions, "
                "/v1/completions and /v1/embeddings relay to it",
                param="model",
            )
        raise NotFound(
            f"The model `{model}` does not exist. Available models: {self.available()}.",
            param="model",
        )

    def chat_backend(self, model: str) -> ChatBackend | None:
        """The chat backend whose prefix ``model`` starts with (the longest), if any; an
        upstream model (matched by its exact name) is the gateway's."""
        if self.gateway is not None and self.gateway.serves(model):
            return self.gateway
        matches = [p for p in self.chat_backends if model.startswith(p)]
        return self.chat_backends[max(matches, key=len)] if matches else None

    def embedding_model(self, model: str) -> Embedder:
        """The embedder if ``model`` names it; 404 otherwise (400 for a chat model)."""
        self._check_accepting()
        if self.embedder is not None and model in self.embedder_names():
            guard = request_guard.get()
            if guard is not None:
                guard.check_model(set(self.embedder_names()))
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
    """The app's :class:`ServerState` (use as ``Depends(get_state)``)."""
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
