"""``llmeco serve``: parse the options, then run a :class:`~llmeco.server.runtime.ServerRuntime`
until SIGTERM (which drains in-flight requests for up to ``--shutdown-timeout`` seconds)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from llmeco.errors import ConfigError


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
    tool_parser: Annotated[
        str | None,
        typer.Option(
            "--tool-parser",
            help="Tool-call format of the chat models: hermes, llama3_json or mistral "
            "(LLMECO_TOOL_PARSER). Default: from each model's chat template, else hermes.",
        ),
    ] = None,
    classifier: Annotated[
        list[str] | None,
        typer.Option(
            "--classifier",
            help="NAME=REF: serve a trained classifier (`llmeco train classify` output dir, or "
            "a registry NAME@alias / NAME:N) as model NAME of /v1/tasks/classify and "
            "/v1/tasks/sentiment. Repeat for several.",
        ),
    ] = None,
    agent: Annotated[
        list[Path] | None,
        typer.Option(
            "--agent",
            help="An agent profile (YAML) or a directory of them, served as model "
            "agent:NAME. Repeat for several; LLMECO_HOME/agents/ is read too when it exists.",
        ),
    ] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            "--upstream",
            help="NAME=URL[,URL…]: relay model NAME to other OpenAI-compatible servers "
            "(URL like http://host:port/v1; several URLs are load-balanced). Repeat for "
            "several. With upstreams and no --model, no local model is loaded.",
        ),
    ] = None,
    upstream_key_env: Annotated[
        str | None,
        typer.Option(
            "--upstream-key-env",
            help="Environment variable holding the API key sent to --upstream servers.",
        ),
    ] = None,
    models_config: Annotated[
        Path | None,
        typer.Option(
            "--models-config",
            help="YAML file with an `upstreams:` list (urls, model, api_key_env, timeout, "
            "owned_by, fallbacks, …).",
        ),
    ] = None,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Run as a Ray Serve deployment (needs `pip install 'llmeco[ray]'`): "
            "--replicas copies of this server behind one port, sharing the store "
            "(LLMECO_DATABASE_URL) and limits (LLMECO_REDIS_URL).",
        ),
    ] = False,
    replicas: Annotated[
        int, typer.Option(help="With --ray: how many replicas (each loads its own models).")
    ] = 1,
    ray_address: Annotated[
        str | None,
        typer.Option(help="With --ray: the Ray cluster to join (default: start a local one)."),
    ] = None,
    min_replicas: Annotated[
        int | None, typer.Option(help="With --ray and --max-replicas: autoscaling floor.")
    ] = None,
    max_replicas: Annotated[
        int | None,
        typer.Option(help="With --ray: autoscale up to this many replicas (overrides --replicas)."),
    ] = None,
    target_ongoing_requests: Annotated[
        float, typer.Option(help="With --ray autoscaling: requests in flight per replica.")
    ] = 8.0,
    replica_cpus: Annotated[
        float, typer.Option(help="With --ray: CPUs Ray reserves for each replica.")
    ] = 1.0,
) -> None:
    """Serve models over an OpenAI-compatible HTTP API (and a chat page at /).

    As a gateway (--upstream / --models-config without --model) it loads no local model
    and no embedding model, and starts in about a second.
    """
    from llmeco.engine.backends.upstream_config import config_from_options
    from llmeco.modeling.tool_parsers import get_tool_parser
    from llmeco.observability import tracing
    from llmeco.observability.logging import configure_logging
    from llmeco.server.runtime import ServerRuntime
    from llmeco.settings import Settings

    settings = Settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    if tool_parser is not None:
        settings.tool_parser = tool_parser
    if settings.tool_parser:
        get_tool_parser(settings.tool_parser)  # ConfigError naming the choices
    if no_auth and not is_loopback(settings.host):
        raise ConfigError(
            f"--no-auth serves without API keys, so it only binds a loopback address; "
            f"--host {settings.host} is not one (use 127.0.0.1, or drop --no-auth)"
        )
    upstreams = config_from_options(upstream or [], upstream_key_env, models_config)
    for spec in upstreams.upstreams:
        spec.api_key()  # ConfigError now for an unset api_key_env, before anything loads
    gateway_only = bool(upstreams.upstreams) and not model
    configure_logging(settings.log_level)
    tracing.configure(settings)  # OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set
    if ray:
        from llmeco.server.scaleout import ReplicaOptions, Scaling, run_on_ray

        scaling = Scaling(
            replicas=replicas,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            target_ongoing_requests=target_ongoing_requests,
            cpus_per_replica=replica_cpus,
            address=ray_address,
        )
        options = ReplicaOptions(
            models=() if gateway_only else tuple(model or [settings.default_model]),
            auth=not no_auth,
            embeddings=embeddings and not gateway_only,
            upstreams=upstreams if upstreams.upstreams else None,
            speech=not gateway_only,
            classifiers=tuple(classifier or []),
            agents=tuple(str(path) for path in agent or []),
            overrides={"tool_parser": settings.tool_parser} if tool_parser else {},
        )
        run_on_ray(settings, options, scaling, announce=typer.echo)
        return

    async def run() -> None:
        async with ServerRuntime.open(
            settings,
            [] if gateway_only else (model or [settings.default_model]),
            auth=not no_auth,
            embeddings=embeddings and not gateway_only,
            upstreams=upstreams if upstreams.upstreams else None,
            speech=not gateway_only,
            classifiers=classifier or [],
            agents=agent or [],
            announce=typer.echo,
        ) as runtime:
            await runtime.serve(settings.host, settings.port, shutdown_timeout=shutdown_timeout)

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run())


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (a dependency on Linux and macOS): its
    socket and timer handling is C, which roughly halves what each relayed or served request
    costs the server in CPU; None (asyncio's own loop) elsewhere."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":  # python -m llmeco.cli.serve (used by benchmarks/serve.py)
    typer.run(serve)
