"""``llmeco serve``: load models, then serve the OpenAI-compatible API until SIGTERM.

Shutdown is graceful: on SIGTERM/SIGINT the server marks itself draining (``/ready`` turns
503, new generation requests get 503), stops accepting connections, lets in-flight requests
finish for up to ``--shutdown-timeout`` seconds (then cancels them, which aborts their
generations), and finally shuts each engine down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Generator
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn

from llmeco.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from llmeco.apps.classifier import ServedClassifier
    from llmeco.engine.protocol import EngineClient
    from llmeco.engine.swap import ModelSlot
    from llmeco.governance.audit import AuditLedger
    from llmeco.rag.embed import Embedder
    from llmeco.server.auth import Authenticator
    from llmeco.server.hotswap import ModelFollower
    from llmeco.server.state import ServerState
    from llmeco.server.support.desk import SupportDesk
    from llmeco.settings import Settings

log = logging.getLogger("llmeco.serve")


def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "-m", help="Model reference to serve (repeat for several). Default: default."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (LLMECO_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind; 0 picks a free one.")] = None,
    shutdown_timeout: Annotated[
        float, typer.Option(help="Seconds in-flight requests get to finish on SIGTERM.")
    ] = 30.0,
    embeddings: Annotated[
        bool, typer.Option(help="Also serve the packaged embedding model on /v1/embeddings.")
    ] = True,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Serve without API keys (development; loopback --host only)."
        ),
    ] = False,
    classifier: Annotated[
        list[str] | None,
        typer.Option(
            "--classifier",
            help="NAME=REF: serve a trained classifier (`llmeco train classify` output dir, or "
            "a registry NAME@alias / NAME:N) as model NAME of /v1/tasks/classify and "
            "/v1/tasks/sentiment. Repeat for several.",
        ),
    ] = None,
) -> None:
    """Serve models over an OpenAI-compatible HTTP API (and a chat page at /)."""
    from llmeco.observability.logging import configure_logging
    from llmeco.server import build_app
    from llmeco.settings import Settings

    settings = Settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    if no_auth and not is_loopback(settings.host):
        raise ConfigError(
            f"--no-auth serves without API keys, so it only binds a loopback address; "
            f"--host {settings.host} is not one (use 127.0.0.1, or drop --no-auth)"
        )
    configure_logging(settings.log_level)
    ledger = _open_ledger(settings)
    auth = None if no_auth else _open_auth(settings, ledger)
    engines, aliases = _load_engines(model or [settings.default_model], settings)
    follower = _follower(settings, engines, ledger)
    embedder = _load_embedder() if embeddings else None
    support = _open_support(settings, embedder) if embedder is not None else None
    classifiers = _load_classifiers(classifier or [], settings)
    app = build_app(
        settings,
        engines,
        embedder,
        aliases=aliases,
        ledger=ledger,
        auth=auth,
        support=support,
        follower=follower,
        classifiers=classifiers,
    )
    asyncio.run(_serve(app, settings.host, settings.port, shutdown_timeout))


def _open_ledger(settings: Settings) -> AuditLedger | None:
    """The audit ledger of the store (None with LLMECO_AUDIT=false); closed by _serve."""
    if not settings.audit:
        return None
    from llmeco.governance.audit import AuditLedger

    return AuditLedger.open(settings)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _open_auth(settings: Settings, ledger: AuditLedger | None) -> Authenticator:
    """Keys and limits; on a store without keys, create the first admin key and print it
    once (only its hash is stored). Closed by _serve."""
    from llmeco.server.auth import Authenticator

    auth = Authenticator.open(settings)
    token = auth.keys.ensure_first_admin()
    if token is not None:
        first = auth.keys.all_keys()[0]
        if ledger is not None:
            ledger.record_admin("serve", "key.create", first.as_dict()).result(30)
        typer.echo(
            "Created the first admin key. It is shown only this once; store it now:\n"
            f"  {token}\n"
            "Send it as `Authorization: Bearer <key>`; create more with `llmeco keys create`."
        )
    return auth


def _load_engines(
    refs: list[str], settings: Settings
) -> tuple[dict[str, ModelSlot], dict[str, str]]:
    """Load each reference into a hot-swappable slot; served names must be distinct."""
    from llmeco.engine.async_engine import AsyncEngine
    from llmeco.engine.swap import ModelSlot

    engines: dict[str, ModelSlot] = {}
    aliases: dict[str, str] = {}
    for ref in refs:
        log.info("loading model", extra={"ref": ref})
        engine = AsyncEngine.from_ref(ref, settings)
        name = engine.model_info.name
        if name in engines:
            raise ConfigError(f"--model {ref} is served as {name!r}, which is already served")
        engines[name] = ModelSlot(engine, ref, drain_timeout=settings.swap_drain_seconds)
        if ref != name:
            aliases[ref] = name
        log.info("model ready", extra={"ref": ref, "model": name})
    return engines, aliases


def _follower(
    settings: Settings, slots: dict[str, ModelSlot], ledger: AuditLedger | None
) -> ModelFollower:
    """Hot swap: follows each ``NAME@alias`` model's alias in the registry (started by
    ``_serve``), and reloads any model on ``POST /admin/models/{name}/reload``."""
    from llmeco.engine.async_engine import AsyncEngine
    from llmeco.registry.registry import Registry
    from llmeco.server.hotswap import ModelFollower

    def load(ref: str, name: str) -> EngineClient:
        return AsyncEngine.from_ref(ref, settings, name=name)

    return ModelFollower(
        slots,
        load,
        lambda: Registry.open(settings),
        poll_seconds=settings.model_poll_seconds,
        ledger=ledger,
    )


def _load_classifiers(options: list[str], settings: Settings) -> dict[str, ServedClassifier]:
    """``--classifier NAME=REF`` → loaded classifiers by name (closed by ``_serve``)."""
    from llmeco.apps.classifier import load_served_classifier, parse_classifier_option

    parsed = [parse_classifier_option(value) for value in options]  # all checked before loading
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        raise ConfigError(f"--classifier names must be distinct: {', '.join(names)}")
    loaded: dict[str, ServedClassifier] = {}
    for name, ref in parsed:
        log.info("loading classifier", extra={"ref": ref, "model": name})
        loaded[name] = load_served_classifier(name, ref, settings)
    return loaded


def _open_support(settings: Settings, embedder: Embedder) -> SupportDesk:
    """The support assistant over the store's knowledge bases (``model: support:<kb>``)."""
    from llmeco.apps.conversations import ConversationLog
    from llmeco.governance.crypto import Cipher
    from llmeco.server.support.desk import SupportDesk
    from llmeco.store import Store

    store = Store.from_settings(settings)
    return SupportDesk(store, embedder, ConversationLog(store, Cipher.from_settings(settings)))


def _load_embedder() -> Embedder:
    from llmeco.rag.embed import Embedder

    return Embedder()


async def _serve(app: FastAPI, host: str, port: int, shutdown_timeout: float) -> None:
    state: ServerState = app.state.llmeco
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=max(1, round(shutdown_timeout)),
    )
    server = _Server(config, state)
    bound_sock = config.bind_socket()
    # bind_socket() leaves proto=0, so asyncio does not set TCP_NODELAY on accepted
    # connections and Nagle's algorithm adds ~40 ms to keep-alive requests
    # (Kludex/uvicorn#3149); rewrap the socket with IPPROTO_TCP.
    sock = socket.socket(
        bound_sock.family, bound_sock.type, socket.IPPROTO_TCP, fileno=bound_sock.detach()
    )
    bound = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    typer.echo(f"llmeco serving {', '.join(state.engines)} at http://{url_host}:{bound}/")
    follower = getattr(app.state, "follower", None)
    if follower is not None:
        follower.start()
    try:
        await server.serve(sockets=[sock])
    finally:
        if follower is not None:
            await follower.aclose()
        # Requests cut at the timeout were cancelled but not awaited: let their cleanup
        # (aborting their generations) run before the engines go away.
        pending = [t for t in server.server_state.tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        log.info("stopping engines")
        for engine in state.engines.values():
            await engine.shutdown(timeout=1.0)
        if state.embedder is not None:
            state.embedder.close()
        for served in state.classifiers.values():
            served.close()
        auth = getattr(app.state, "auth", None)
        if auth is not None:
            await auth.aclose()  # persists the last usage counts
        ledger = getattr(app.state, "audit_ledger", None)
        if ledger is not None:
            ledger.close()  # commits what is queued and signs a final checkpoint
        log.info("stopped")


class _Server(uvicorn.Server):
    """A uvicorn server that drains on SIGTERM and does not re-raise the signal afterwards
    (uvicorn's default would kill the process before the engines are shut down)."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self._state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._state.draining = True
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        sigs = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in sigs}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


if __name__ == "__main__":  # python -m llmeco.cli.serve (used by benchmarks/serve.py)
    typer.run(serve)
