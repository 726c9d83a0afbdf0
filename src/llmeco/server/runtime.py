"""A running llmeco server: start-up, serving, draining and shutdown in one place.

:meth:`ServerRuntime.open` builds everything a server holds, in order — the audit ledger,
keys and limits (creating and announcing the first admin key on a new store), the model
engines (each in a hot-swappable slot), the alias follower, the embedder, the support desk,
trained classifiers and the agents (their MCP client sessions) — then the app over them.
Leaving the ``async with`` block closes what was opened, in reverse order, even when
start-up failed half way::

    async with ServerRuntime.open(settings, ["default"]) as runtime:
        await runtime.serve(host, port, shutdown_timeout=30)

A test or a script that builds its own app (fake engines, its own stores) wraps it instead:
``await ServerRuntime(app).run(host, port)`` serves it and then closes what its state holds.

Shutdown is graceful: on SIGTERM/SIGINT the server marks itself draining (``/ready`` turns
503, new generation requests get 503), stops accepting connections, lets in-flight requests
finish for up to ``shutdown_timeout`` seconds (then cancels them, which aborts their
generations), and only then shuts the engines down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from llmeco.errors import ConfigError
from llmeco.plugins import BackendSpec, get_registry
from llmeco.server.app import build_app
from llmeco.server.retention import retention_running
from llmeco.server.state import ServerState

if TYPE_CHECKING:
    from fastapi import FastAPI

    from llmeco.apps.agents import AgentHub, AgentProfile
    from llmeco.apps.classifier import ServedClassifier
    from llmeco.apps.speech.service import SpeechService
    from llmeco.apps.support.desk import SupportDesk
    from llmeco.engine.backends.upstream_config import UpstreamsConfig
    from llmeco.engine.protocol import EngineClient
    from llmeco.engine.swap import ModelSlot
    from llmeco.governance.audit import AuditLedger
    from llmeco.rag.embed import Embedder
    from llmeco.server.auth import Authenticator
    from llmeco.server.gateway.serving import UpstreamGateway
    from llmeco.server.hotswap import ModelFollower
    from llmeco.server.mcp.http import McpEndpoint
    from llmeco.settings import Settings

log = logging.getLogger("llmeco.serve")

#: Where the runtime tells the operator things once (the first admin key, the bound URL).
Announce = Callable[[str], None]


def say(message: str) -> None:
    """The default :data:`Announce`: a line on stdout, flushed at once (a supervisor or a
    test reading the pipe sees the bound URL while the server runs)."""
    print(message, flush=True)


class ServerRuntime:
    """One app and the lifetime of everything its :class:`ServerState` holds."""

    def __init__(self, app: FastAPI, *, announce: Announce = say) -> None:
        self.app = app
        self.state: ServerState = app.state.llmeco
        self.announce = announce

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        models: Sequence[str],
        *,
        auth: bool = True,
        embeddings: bool = True,
        classifiers: Sequence[str] = (),
        agents: Sequence[str | Path] = (),
        announce: Announce = say,
        upstreams: UpstreamsConfig | None = None,
        speech: bool = True,
    ) -> AsyncIterator[ServerRuntime]:
        """Open everything ``llmeco serve`` serves and yield the runtime over it.

        ``models`` are model references (``default``, a directory, ``NAME@alias``);
        ``classifiers`` are ``NAME=REF`` options; ``agents`` are agent profile files or
        directories (``LLMECO_HOME/agents/`` is read too when it exists), served as
        ``agent:<name>``; ``upstreams`` are models relayed to other OpenAI-compatible
        servers (the gateway); ``speech`` serves ``/v1/audio/*`` (its models load on first
        use). Raises ``ConfigError`` (and the loaders' typed errors) for a bad
        option or profile; whatever was opened before the failure is closed.
        """
        from llmeco.server.agents import AgentChat, check_agents, read_profiles

        profiles = read_profiles(settings, agents)  # a bad profile fails before any loading
        async with contextlib.AsyncExitStack() as stack:
            ledger = open_ledger(settings)
            if ledger is not None:
                stack.callback(ledger.close)
            authenticator = open_auth(settings, ledger, announce) if auth else None
            if authenticator is not None:
                stack.push_async_callback(authenticator.aclose)
            slots: dict[str, ModelSlot] = {}
            aliases: dict[str, str] = {}
            for ref in models:
                slot = load_engine(ref, settings)
                stack.push_async_callback(slot.shutdown, 1.0)
                name = slot.model_info.name
                if name in slots:
                    raise ConfigError(
                        f"--model {ref} is served as {name!r}, which is already served"
                    )
                slots[name] = slot
                if ref != name:
                    aliases[ref] = name
            embedder = load_embedder() if embeddings else None
            if embedder is not None:
                stack.callback(embedder.close)
            loaded = load_classifiers(classifiers, settings)
            for served in loaded.values():
                stack.callback(served.close)
            hub = await open_agents(profiles)
            stack.push_async_callback(hub.aclose)
            gateway = await open_gateway(settings, upstreams) if upstreams else None
            if gateway is not None:
                stack.push_async_callback(gateway.upstreams.aclose)
            app = build_app(
                settings,
                slots,
                embedder,
                aliases=aliases,
                ledger=ledger,
                auth=authenticator,
                support=open_support(settings, embedder) if embedder is not None else None,
                follower=follower_for(settings, slots, ledger),
                classifiers=loaded,
                chat_backends=[AgentChat(hub)],
                gateway=gateway,
                speech=open_speech(settings) if speech else None,
            )
            app.state.agents = hub
            check_agents(hub, app.state.llmeco)
            runtime = cls(app, announce=announce)
            stack.pop_all()  # from here on the runtime closes what its state holds
            try:
                yield runtime
            finally:
                await runtime.aclose()

    async def serve(self, host: str, port: int, *, shutdown_timeout: float = 30.0) -> None:
        """Serve until SIGTERM/SIGINT, then drain (see the module doc). Does not close."""
        async with self.background():
            await self._serve(host, port, shutdown_timeout)

    @contextlib.asynccontextmanager
    async def background(self) -> AsyncIterator[None]:
        """What runs beside the HTTP server while it serves: ``/mcp``'s session manager, the
        retention purge (when configured) and the alias follower (hot swap). Whoever serves
        the app — :meth:`serve`'s uvicorn or a Ray Serve replica — holds this open."""
        follower = self.state.follower
        async with self._mcp_running(), retention_running(self.state):
            if follower is not None:
                follower.start()
            try:
                yield
            finally:
                if follower is not None:
                    await follower.aclose()

    async def _serve(self, host: str, port: int, shutdown_timeout: float) -> None:
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=max(1, round(shutdown_timeout)),
        )
        server = _DrainingServer(config, self.state)
        bound_sock = config.bind_socket()
        # bind_socket() leaves proto=0, so asyncio does not set TCP_NODELAY on accepted
        # connections and Nagle's algorithm adds ~40 ms to keep-alive requests
        # (Kludex/uvicorn#3149); rewrap the socket with IPPROTO_TCP.
        sock = socket.socket(
            bound_sock.family, bound_sock.type, socket.IPPROTO_TCP, fileno=bound_sock.detach()
        )
        bound = sock.getsockname()[1]
        url_host = f"[{host}]" if ":" in host else host
        self.announce(
            f"llmeco serving {', '.join(self.served_names())} at http://{url_host}:{bound}/"
        )
        try:
            await server.serve(sockets=[sock])
        finally:
            # Requests cut at the timeout were cancelled but not awaited: let their cleanup
            # (aborting their generations) run before the engines go away.
            pending = [t for t in server.server_state.tasks if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=5)

    def _mcp_running(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The ``/mcp`` session manager's lifetime (the app runs with ``lifespan="off"``,
        so the runtime starts it); nothing for an app built without it."""
        mcp: McpEndpoint | None = getattr(self.app.state, "mcp", None)
        return mcp.running() if mcp is not None else contextlib.nullcontext()

    def served_names(self) -> list[str]:
        """The generation models served: local engines, then upstream models."""
        gateway = self.state.gateway
        return [*self.state.engines, *(gateway.upstreams.names() if gateway else [])]

    async def run(self, host: str, port: int, *, shutdown_timeout: float = 30.0) -> None:
        """:meth:`serve`, then :meth:`aclose` (for an app built outside :meth:`open`)."""
        try:
            await self.serve(host, port, shutdown_timeout=shutdown_timeout)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """End the agents' MCP sessions, shut down engines, then close the embedder,
        classifiers, auth (persisting the last usage counts) and the ledger (committing what
        is queued, signing a checkpoint)."""
        state = self.state
        agents: AgentHub | None = getattr(self.app.state, "agents", None)
        if agents is not None:
            await agents.aclose()
        if state.gateway is not None:
            await state.gateway.upstreams.aclose()
        log.info("stopping engines")
        for engine in state.engines.values():
            await engine.shutdown(timeout=1.0)
        if state.embedder is not None:
            state.embedder.close()
        for served in state.classifiers.values():
            served.close()
        if state.auth is not None:
            await state.auth.aclose()
        if state.ledger is not None:
            state.ledger.close()
        log.info("stopped")


class _DrainingServer(uvicorn.Server):
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


def open_ledger(settings: Settings) -> AuditLedger | None:
    """The audit ledger of the store (None with ``LLMECO_AUDIT=false``)."""
    if not settings.audit:
        return None
    from llmeco.governance.audit import AuditLedger

    return AuditLedger.open(settings)


def open_auth(
    settings: Settings, ledger: AuditLedger | None, announce: Announce = say
) -> Authenticator:
    """Keys and limits; on a store without keys, create the first admin key and announce it
    once (only its hash is stored; the creation is recorded in ``ledger``)."""
    from llmeco.server.auth import Authenticator

    auth = Authenticator.open(settings)
    token = auth.keys.ensure_first_admin()
    if token is not None:
        first = auth.keys.all_keys()[0]
        if ledger is not None:
            ledger.record_admin("serve", "key.create", first.as_dict()).result(30)
        announce(
            "Created the first admin key. It is shown only this once; store it now:\n"
            f"  {token}\n"
            "Send it as `Authorization: Bearer <key>`; create more with `llmeco keys create`."
        )
    return auth


def engine_backend(settings: Settings) -> BackendSpec:
    """The backend ``LLMECO_ENGINE_BACKEND`` names, from the plugin registry.

    Raises:
        ConfigError: no registered backend has that name (the message lists them).
    """
    backends = get_registry().backends()
    try:
        return backends[settings.engine_backend]
    except KeyError:
        raise ConfigError(
            f"LLMECO_ENGINE_BACKEND={settings.engine_backend!r} is not a registered engine "
            f"backend; registered: {', '.join(sorted(backends))} (see `llmeco plugins list`)"
        ) from None


def load_engine(ref: str, settings: Settings) -> ModelSlot:
    """Load one model reference into a hot-swappable slot (its served name is the slot
    engine's ``model_info.name``)."""
    from llmeco.engine.swap import ModelSlot

    log.info("loading model", extra={"ref": ref, "backend": settings.engine_backend})
    engine = engine_backend(settings).load(ref, settings, None)
    log.info("model ready", extra={"ref": ref, "model": engine.model_info.name})
    return ModelSlot(engine, ref, drain_timeout=settings.swap_drain_seconds)


def follower_for(
    settings: Settings, slots: dict[str, ModelSlot], ledger: AuditLedger | None
) -> ModelFollower:
    """Hot swap: follows each ``NAME@alias`` model's alias in the registry (started by
    :meth:`ServerRuntime.serve`), and reloads any model on
    ``POST /admin/models/{name}/reload``."""
    from llmeco.registry.registry import Registry
    from llmeco.server.hotswap import ModelFollower

    backend = engine_backend(settings)

    def load(ref: str, name: str) -> EngineClient:
        engine: EngineClient = backend.load(ref, settings, name)
        return engine

    return ModelFollower(
        slots,
        load,
        lambda: Registry.open(settings),
        poll_seconds=settings.model_poll_seconds,
        ledger=ledger,
    )


def load_classifiers(options: Sequence[str], settings: Settings) -> dict[str, ServedClassifier]:
    """``NAME=REF`` options → loaded classifiers by name (all options are checked before
    any model is loaded; names must be distinct)."""
    from llmeco.apps.classifier import load_served_classifier, parse_classifier_option

    parsed = [parse_classifier_option(value) for value in options]
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        raise ConfigError(f"--classifier names must be distinct: {', '.join(names)}")
    loaded: dict[str, ServedClassifier] = {}
    try:
        for name, ref in parsed:
            log.info("loading classifier", extra={"ref": ref, "model": name})
            loaded[name] = load_served_classifier(name, ref, settings)
    except BaseException:
        for served in loaded.values():
            served.close()
        raise
    return loaded


def open_speech(settings: Settings) -> SpeechService:
    """The speech models (``/v1/audio/*``): bundled Whisper tiny.en and eSpeak NG, or the
    Whisper directory ``LLMECO_SPEECH_ASR_MODEL`` names; they load on first use."""
    from llmeco.apps.speech.service import SpeechService

    return SpeechService.from_settings(settings)


def open_support(settings: Settings, embedder: Embedder) -> SupportDesk:
    """The support assistant over the store's knowledge bases (``model: support:<kb>``)."""
    from llmeco.apps.conversations import ConversationLog
    from llmeco.apps.support.desk import SupportDesk
    from llmeco.governance.crypto import Cipher
    from llmeco.store import Store

    store = Store.from_settings(settings)
    return SupportDesk(store, embedder, ConversationLog(store, Cipher.from_settings(settings)))


async def open_agents(profiles: Sequence[AgentProfile]) -> AgentHub:
    """The agents of ``profiles``, their MCP servers connected (``model: agent:<name>``)."""
    from llmeco.apps.agents import AgentHub

    for profile in profiles:
        log.info("starting agent", extra={"model": profile.model_name})
    return await AgentHub.open(profiles)


async def open_gateway(settings: Settings, config: UpstreamsConfig) -> UpstreamGateway:
    """The upstream models of ``config`` behind one HTTP client, probes started."""
    from llmeco.engine.backends.remote import UpstreamSet
    from llmeco.server.gateway.serving import TokenCounter, UpstreamGateway

    upstreams = UpstreamSet(config)
    await upstreams.start()
    for name in upstreams.names():
        log.info("relaying to upstream", extra={"model": name})
    return UpstreamGateway(upstreams, TokenCounter(settings))


def load_embedder() -> Embedder:
    """The packaged embedding model (served on ``/v1/embeddings``, used by the apps)."""
    from llmeco.rag.embed import Embedder

    return Embedder()
