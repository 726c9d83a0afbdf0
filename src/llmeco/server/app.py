"""The one app factory: ``build_app(settings, engines, embedder)``.

The app serves whatever :class:`~llmeco.engine.protocol.EngineClient` objects it is given
(the native engine, another backend, or a test fake); it never creates or stops them, so the
caller (``llmeco serve``, a test) owns their lifetime.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.responses import HTMLResponse, Response

from llmeco import __version__
from llmeco.engine.protocol import EngineClient
from llmeco.server import errors
from llmeco.server.health import router as health_router
from llmeco.server.middleware import RequestMiddleware
from llmeco.server.openai.chat.router import router as chat_router
from llmeco.server.openai.completions.router import router as completions_router
from llmeco.server.openai.embeddings.router import router as embeddings_router
from llmeco.server.openai.models.router import router as models_router
from llmeco.server.openai.tokenize.router import router as tokenize_router
from llmeco.server.state import ServerState
from llmeco.settings import Settings

if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder


def _index_html() -> str:
    return resources.files("llmeco.server").joinpath("static/index.html").read_text("utf-8")


def build_app(
    settings: Settings,
    engines: Mapping[str, EngineClient],
    embedder: Embedder | None = None,
    *,
    aliases: Mapping[str, str] | None = None,
) -> FastAPI:
    """An OpenAI-compatible app serving ``engines`` (by name) and, optionally, ``embedder``.

    ``aliases`` maps extra names clients may use (e.g. the ``--model`` reference) to served
    names; /v1/models lists only the served names.
    """
    unknown = {a: n for a, n in (aliases or {}).items() if n not in engines}
    if unknown:
        raise ValueError(f"aliases point at models that are not served: {unknown}")
    state = ServerState(
        settings=settings, engines=dict(engines), embedder=embedder, aliases=dict(aliases or {})
    )
    app = FastAPI(
        title="llmeco",
        version=__version__,
        description="OpenAI-compatible API over llmeco's engines.",
    )
    app.state.llmeco = state
    errors.install(app)
    app.add_middleware(RequestMiddleware, state=state)
    for router in (
        models_router,
        chat_router,
        completions_router,
        embeddings_router,
        tokenize_router,
        health_router,
    ):
        app.include_router(router)
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
