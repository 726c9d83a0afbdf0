"""The one app factory: ``build_app(settings, engines, embedder)``.

The app serves whatever :class:`~llmeco.engine.protocol.EngineClient` objects it is given
(the native engine, another backend, or a test fake); it never creates or stops them, so the
caller (``llmeco serve``, a test) owns their lifetime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.responses import HTMLResponse, Response

from llmeco import __version__
from llmeco.engine.protocol import EngineClient
from llmeco.governance.scopes import app_routes
from llmeco.plugins import get_registry
from llmeco.server import errors
from llmeco.server.admin.audit import router as audit_admin_router
from llmeco.server.admin.models import router as models_admin_router
from llmeco.server.admin.router import router as admin_router
from llmeco.server.admin.sessions import router as sessions_admin_router
from llmeco.server.audio.router import router as audio_router
from llmeco.server.audit import AuditMiddleware
from llmeco.server.auth import AuthMiddleware
from llmeco.server.gateway.metrics import install_upstream_metrics
from llmeco.server.health import router as health_router
from llmeco.server.mcp.http import McpEndpoint
from llmeco.server.middleware import RequestMiddleware
from llmeco.server.openai.chat.router import router as chat_router
from llmeco.server.openai.completions.router import router as completions_router
from llmeco.server.openai.embeddings.router import router as embeddings_router
from llmeco.server.openai.models.router import router as models_router
from llmeco.server.openai.tokenize.router import router as tokenize_router
from llmeco.server.state import ServerState
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


def _index_html() -> str:
    return resources.files("llmeco.server").joinpath("static/index.html").read_text("utf-8")


def build_app(
    settings: Settings,
    engines: Mapping[str, EngineClient],
    embedder: Embedder | None = None,
    *,
    aliases: Mapping[str, str] | None = None,
    ledger: AuditLedger | None = None,
    auth: Authenticator | None = None,
    support: SupportDesk | None = None,
    follower: ModelFollower | None = None,
    classifiers: Mapping[str, ServedClassifier] | None = None,
    chat_backends: Sequence[ChatBackend] = (),
    gateway: UpstreamGateway | None = None,
    speech: SpeechService | None = None,
) -> FastAPI:
    """An OpenAI-compatible app serving ``engines`` (by name) and, optionally, ``embedder``.

    ``aliases`` maps extra names clients may use (e.g. the ``--model`` reference) to served
    names; /v1/models lists only the served names. With ``ledger``, every request is
    recorded in the audit ledger (outermost middleware; ``ServerState.ledger`` for admin
    routes' ``record_admin``); the caller opens and closes it.

    With ``auth``, every non-public route needs an API key with the route's scope, model
    allow-lists and limits are enforced, and ``/admin/*`` + ``/v1/usage`` are served (see
    ``server/auth.py``); None serves without auth (loopback development, tests). The caller
    closes it (``await auth.aclose()``).

    With ``follower`` (hot swap of models served from ``NAME@alias``), ``/admin/models``
    lists the served versions and ``POST /admin/models/{name}/reload`` swaps on demand; the
    caller starts and closes it.

    ``classifiers`` (name → trained classifier) answer ``/v1/tasks/classify`` and
    ``/v1/tasks/sentiment`` when a request's ``model`` names one, and are listed by
    ``/v1/models`` with ``task: "classify"``; the caller closes them.

    The applications (task endpoints, writing and support assistants, the voice desk and any
    plugin's app) come from the plugin registry (``register_apps``): their routers are
    mounted and their chat backends registered. ``chat_backends`` adds more (the agents'
    ``agent:``); each answers ``/v1/chat/completions`` for model names starting with its
    prefix (see ``server/chat_backends.py``). The support assistant (``support:``) answers
    404 when the server has no ``support`` desk.

    ``gateway`` relays chat, completions and embeddings of its upstream models (exact
    names) to other OpenAI-compatible servers, with every governance step in front (see
    ``server/gateway/``); the caller starts and closes its ``UpstreamSet``.

    ``speech`` (speech-to-text and text-to-speech models, loaded on first use) answers
    ``/v1/audio/*`` and the voice support desk ``/v1/apps/voice/{kb}``; without it they 404.

    ``/mcp`` serves the same models, tasks and knowledge bases as MCP tools (streamable HTTP,
    ``server/mcp/``); its session manager (``app.state.mcp``) runs while
    ``ServerRuntime.serve`` serves, or with the app's lifespan where the host runs it.
    """
    registry = get_registry()
    apps = registry.apps()
    app_routes()  # an app that claims a core route or names an unknown scope fails here
    backends: dict[str, ChatBackend] = {}
    for backend in [b for spec in apps for b in spec.chat_backends] + list(chat_backends):
        if backend.prefix in backends:
            raise ValueError(f"two chat backends claim the model prefix {backend.prefix!r}")
        backends[backend.prefix] = backend
    unknown = {a: n for a, n in (aliases or {}).items() if n not in engines}
    if unknown:
        raise ValueError(f"aliases point at models that are not served: {unknown}")
    state = ServerState(
        settings=settings,
        engines=dict(engines),
        embedder=embedder,
        aliases=dict(aliases or {}),
        support=support,
        classifiers=dict(classifiers or {}),
        auth=auth,
        ledger=ledger,
        follower=follower,
        chat_backends=backends,
        gateway=gateway,
        speech=speech,
    )
    if gateway is not None:
        served = {*engines, *state.aliases, *state.embedder_names(), *state.classifiers}
        clash = served & set(gateway.upstreams.names())
        if clash:
            raise ValueError(f"upstream names are already used by served models: {sorted(clash)}")
        install_upstream_metrics(state, gateway.upstreams)
    clash = set(state.classifiers) & ({*engines, *state.aliases, *state.embedder_names()})
    if clash:
        raise ValueError(f"classifier names are already used by served models: {sorted(clash)}")
    mcp = McpEndpoint(state)
    app = FastAPI(
        title="llmeco",
        version=__version__,
        description="OpenAI-compatible API over llmeco's engines.",
        lifespan=mcp.lifespan,
    )
    app.state.llmeco = state
    app.state.mcp = mcp
    errors.install(app)
    if auth is not None:
        app.add_middleware(AuthMiddleware, auth=auth)  # added before RequestMiddleware: inside it
        app.include_router(admin_router)
        app.include_router(sessions_admin_router)
        app.include_router(audit_admin_router)  # 404 without a ledger
    app.add_middleware(RequestMiddleware, state=state)
    if follower is not None:
        app.include_router(models_admin_router)
    if ledger is not None:
        app.add_middleware(AuditMiddleware, ledger=ledger, metrics=state.metrics)  # outermost
        state.metrics.watch_ledger(ledger)
    for router in (
        models_router,
        chat_router,
        completions_router,
        embeddings_router,
        tokenize_router,
        audio_router,
        health_router,
    ):
        app.include_router(router)
    for spec in apps:  # the built-in apps and every plugin's, through the same hook
        for app_router in spec.routers:
            app.include_router(app_router)
    app.router.routes.append(mcp.route())  # raw ASGI, outside the OpenAPI schema
    page = _index_html()

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        """The chat page."""
        return HTMLResponse(page)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        """No icon (and no 404 in the browser console)."""
        return Response(status_code=204)

    return app
