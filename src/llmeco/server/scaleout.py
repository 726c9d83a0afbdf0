"""Scale-out on Ray Serve: the same app as ``llmeco serve``, in N replicas behind one port.

``llmeco serve --ray --replicas N`` (or ``serve run deploy/ray/serve-config.yaml``) deploys
:class:`LlmecoReplica` as a Ray Serve deployment. Each replica is a Ray actor process that
opens its own :class:`~llmeco.server.runtime.ServerRuntime` — its own engines, embedder,
support desk and agents — and hands its FastAPI app to Serve, whose HTTP proxy spreads
requests over the replicas (and streams SSE through unchanged). What must be one across
replicas lives outside them:

* the store (keys, the audit ledger, the registry, knowledge bases) in one database —
  PostgreSQL by ``LLMECO_DATABASE_URL``; SQLite under a shared ``LLMECO_HOME`` only when every
  replica runs on this machine. The ledger already serialises appenders on the head row, so
  replicas share one verifiable chain.
* the limits (RPM, TPM, daily budgets) in Redis (``LLMECO_REDIS_URL``): without it each
  replica would enforce a key's limits on its own and the key would get N times its quota,
  so more than one replica with keys on requires it.
* the model aliases in the registry: each replica's follower polls it, so a promote reaches
  every replica within ``LLMECO_MODEL_POLL_SECONDS``.

The first admin key is created once, by the driver, before any replica starts (replicas
starting together on an empty store would each create one). Replicas read their settings
from their environment (Ray's local cluster inherits the driver's; on a remote cluster set
``LLMECO_*`` on the nodes or in the Serve config's ``runtime_env``); secrets are never passed
as deployment arguments, so they never appear in Ray's state or dashboard. Serve restarts a
replica whose process dies or whose health check (every engine's ``check_health``) fails.

``ray`` is an optional dependency (``pip install 'llmeco[ray]'``), imported only here and
only when Ray is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmeco.errors import ConfigError
from llmeco.settings import Settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from llmeco.engine.backends.upstream_config import UpstreamsConfig
    from llmeco.server.runtime import ServerRuntime

log = logging.getLogger("llmeco.scaleout")

#: The Serve application and deployment names (``serve status`` shows them).
APP_NAME = "llmeco"
DEPLOYMENT_NAME = "llmeco"


@dataclass(frozen=True)
class ReplicaOptions:
    """What each replica serves: the arguments of ``ServerRuntime.open`` that are not
    settings, plus the settings the command line overrode (never secrets)."""

    models: tuple[str, ...] = ()
    auth: bool = True
    embeddings: bool = True
    classifiers: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    upstreams: UpstreamsConfig | None = None
    speech: bool = True
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def settings(self) -> Settings:
        """The replica's settings: its environment, then the command line's overrides."""
        settings = Settings()
        for name, value in self.overrides.items():
            setattr(settings, name, value)
        return settings


@dataclass(frozen=True)
class Scaling:
    """How many replicas, and what each gets. ``replicas`` is a fixed count; with
    ``max_replicas`` set, Serve autoscales between ``min_replicas`` and ``max_replicas`` to keep
    about ``target_ongoing_requests`` requests in flight per replica."""

    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_ongoing_requests: float = 8.0
    cpus_per_replica: float = 1.0
    max_ongoing_requests: int = 256
    address: str | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ConfigError(f"--replicas must be at least 1, not {self.replicas}")
        if self.max_replicas is not None:
            low = self.min_replicas if self.min_replicas is not None else 1
            if not 0 <= low <= self.max_replicas:
                raise ConfigError(
                    f"autoscaling needs 0 <= --min-replicas ({low}) <= --max-replicas "
                    f"({self.max_replicas})"
                )
        if self.target_ongoing_requests <= 0:
            raise ConfigError("--target-ongoing-requests must be positive")
        if self.cpus_per_replica < 0:
            raise ConfigError("--replica-cpus must be 0 or more")

    @property
    def most_replicas(self) -> int:
        """The largest number of replicas this plan may run at once."""
        return self.max_replicas if self.max_replicas is not None else self.replicas

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments of ``serve.deployment(...).options`` for this plan."""
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            "ray_actor_options": {"num_cpus": self.cpus_per_replica},
            "max_ongoing_requests": self.max_ongoing_requests,
            "health_check_period_s": 5.0,
            "health_check_timeout_s": 30.0,
            "graceful_shutdown_timeout_s": 30.0,
        }
        if self.max_replicas is not None:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas if self.min_replicas is not None else 1,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


def check_shared_state(settings: Settings, scaling: Scaling, *, auth: bool) -> None:
    """Refuse a plan whose replicas could not share state (ConfigError says what to set).

    More than one replica with keys on needs Redis for the limits; replicas on another
    machine (``--ray-address``) need a database URL, since SQLite is a local file.
    """
    if auth and scaling.most_replicas > 1 and not settings.redis_url:
        raise ConfigError(
            f"{scaling.most_replicas} replicas would each enforce every key's limits on their "
            "own; set LLMECO_REDIS_URL (e.g. redis://127.0.0.1:6379/0) so they share them"
        )
    if scaling.address and not settings.database_url:
        raise ConfigError(
            f"replicas on the Ray cluster at {scaling.address} cannot share this machine's "
            "SQLite store; set LLMECO_DATABASE_URL to a PostgreSQL database they can all reach"
        )


class LlmecoReplica:
    """One replica: a :class:`ServerRuntime` opened in the Ray actor, its app served by
    Serve's proxy. Wrapped by ``serve.ingress()`` in :func:`deployment` (late-bound: the app
    exists only once the runtime is open)."""

    runtime: ServerRuntime

    async def __init__(self, options: ReplicaOptions) -> None:  # type: ignore[misc]
        from llmeco.observability import tracing
        from llmeco.observability.logging import configure_logging
        from llmeco.server.runtime import ServerRuntime

        settings = options.settings()
        configure_logging(settings.log_level)
        tracing.configure(settings)  # OTLP export when the replica's environment asks
        if settings.threads:
            import torch

            torch.set_num_threads(settings.threads)
        self._stack = contextlib.AsyncExitStack()
        self.runtime = await self._stack.enter_async_context(
            ServerRuntime.open(
                settings,
                options.models,
                auth=options.auth,
                embeddings=options.embeddings,
                upstreams=options.upstreams,
                speech=options.speech,
                classifiers=options.classifiers,
                agents=options.agents,
                announce=log.info,
            )
        )
        await self._stack.enter_async_context(self.runtime.background())

    def __serve_build_asgi_app__(self) -> ASGIApp:
        """The replica's app (called by Serve once ``__init__`` has opened the runtime)."""
        return without_request_id_echo(self.runtime.app)

    async def check_health(self) -> None:
        """Serve's health check: every engine must pass its own (a dead engine raises, and
        Serve replaces the replica)."""
        for engine in self.runtime.state.engines.values():
            await engine.check_health()

    async def __del__(self) -> None:
        """Close the runtime (engines, ledger commit and checkpoint, usage flush)."""
        stack = getattr(self, "_stack", None)
        if stack is not None:
            await stack.aclose()


def without_request_id_echo(app: ASGIApp) -> ASGIApp:
    """``app`` minus the ``x-request-id`` response header: Serve's proxy gives every request
    an id, passes it in, and sets the header on the response itself (the server's audit
    middleware echoes the same id, which would send the header twice)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_without(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_without)

    return wrapped


def deployment(options: ReplicaOptions, scaling: Scaling) -> Any:
    """The Serve application: :class:`LlmecoReplica` behind ``serve.ingress``, bound to
    ``options`` and configured by ``scaling`` (pass it to ``serve.run``)."""
    from ray import serve

    ingress = serve.ingress()(LlmecoReplica)
    build: Any = serve.deployment(**scaling.deployment_options())
    return build(ingress).bind(options)


def app_builder(args: dict[str, Any]) -> Any:
    """A Serve *application builder* for ``serve run`` / ``serve deploy`` with a config file
    (``import_path: llmeco.server.scaleout:app_builder``; see ``deploy/ray/``).

    ``args`` (the config's ``args:``) takes ``models`` (a list; default: the packaged model),
    ``embeddings``, ``auth``, ``speech``, ``classifiers``, ``agents``, ``models_config`` (an
    upstreams YAML path) and ``replicas``/``min_replicas``/``max_replicas``/
    ``target_ongoing_requests``/``replica_cpus``; the config's ``deployments:`` section
    overrides those. No key is created here (the builder may run in Serve's controller, whose
    logs are no place for a secret): create the first admin key with ``llmeco keys create``.
    """
    from llmeco.engine.backends.upstream_config import config_from_options

    known = {
        "models", "embeddings", "auth", "speech", "classifiers", "agents", "models_config",
        "replicas", "min_replicas", "max_replicas", "target_ongoing_requests", "replica_cpus",
    }  # fmt: skip
    unknown = sorted(set(args) - known)
    if unknown:
        raise ConfigError(
            f"unknown llmeco Serve args: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    settings = Settings()
    models_config = args.get("models_config")
    upstreams = config_from_options([], None, Path(models_config) if models_config else None)
    gateway_only = bool(upstreams.upstreams) and not args.get("models")
    options = ReplicaOptions(
        models=() if gateway_only else tuple(args.get("models") or [settings.default_model]),
        auth=bool(args.get("auth", True)),
        embeddings=bool(args.get("embeddings", True)) and not gateway_only,
        upstreams=upstreams if upstreams.upstreams else None,
        speech=bool(args.get("speech", not gateway_only)),
        classifiers=tuple(args.get("classifiers") or ()),
        agents=tuple(str(a) for a in args.get("agents") or ()),
    )
    scaling = Scaling(
        replicas=int(args.get("replicas", 1)),
        min_replicas=args.get("min_replicas"),
        max_replicas=args.get("max_replicas"),
        target_ongoing_requests=float(args.get("target_ongoing_requests", 8.0)),
        cpus_per_replica=float(args.get("replica_cpus", 1.0)),
    )
    check_shared_state(settings, scaling, auth=options.auth)
    return deployment(options, scaling)


def create_first_key(settings: Settings, announce: Callable[[str], None]) -> None:
    """Create (and announce) the first admin key on an empty store, once, in the driver."""
    import asyncio

    from llmeco.server.runtime import open_auth, open_ledger

    ledger = open_ledger(settings)
    try:
        auth = open_auth(settings, ledger, announce)
        asyncio.run(auth.aclose())
    finally:
        if ledger is not None:
            ledger.close()


def convert_once(settings: Settings, models: tuple[str, ...]) -> None:
    """Convert GGUF models (the default one included) here, before the replicas start, so
    they find the safetensors directory instead of all converting at once (and a bad
    reference fails here, named, before any Ray process starts)."""
    from llmeco.modeling.load import resolve_model
    from llmeco.registry.checkout import resolve_local

    for ref in models:
        resolve_model(ref, settings, resolve_ref=resolve_local)


def run_on_ray(
    settings: Settings,
    options: ReplicaOptions,
    scaling: Scaling,
    *,
    announce: Callable[[str], None],
    wait: Callable[[], None] | None = None,
) -> None:
    """Deploy the replicas on Ray Serve, serve on ``settings.host:settings.port`` until
    SIGTERM/SIGINT (or until ``wait`` returns), then shut Serve down.

    Starts a local Ray cluster unless ``scaling.address`` names one. Returns once the
    replicas have been stopped; raises ConfigError for a plan whose replicas could not share
    state (see :func:`check_shared_state`).
    """
    check_shared_state(settings, scaling, auth=options.auth)
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise ConfigError(
            "--ray needs Ray Serve: pip install 'llmeco[ray]' (or 'ray[serve]')"
        ) from exc
    if options.auth:
        create_first_key(settings, announce)
    convert_once(settings, options.models)
    ray.init(
        address=scaling.address,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        ignore_reinit_error=True,
    )
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(deployment(options, scaling), name=APP_NAME, route_prefix="/")
        count = (
            f"{scaling.min_replicas or 1}–{scaling.max_replicas} replicas (autoscaling)"
            if scaling.max_replicas is not None
            else f"{scaling.replicas} replica{'s' if scaling.replicas != 1 else ''}"
        )
        url_host = f"[{settings.host}]" if ":" in settings.host else settings.host
        announce(
            f"llmeco serving {', '.join(served_names(options))} at "
            f"http://{url_host}:{settings.port}/ on Ray Serve ({count})"
        )
        (wait or wait_for_signal)()
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


def served_names(options: ReplicaOptions) -> list[str]:
    """The generation models the replicas serve, as the announcement names them."""
    upstreams = [spec.name for spec in options.upstreams.upstreams] if options.upstreams else []
    return [*options.models, *upstreams]


def wait_for_signal() -> None:
    """Block until SIGTERM or SIGINT (the driver's whole job once the replicas are up)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
