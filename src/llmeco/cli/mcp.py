"""``llmeco mcp``: llmeco's knowledge bases, tasks and models as MCP tools.

``llmeco mcp serve`` speaks MCP over stdin/stdout, for an agent that launches llmeco as a
subprocess. It opens what ``llmeco serve`` opens (the models given with ``--model``, the
embedding model, the knowledge bases and audit ledger of the store under ``LLMECO_HOME``)
and runs the tools in-process, with no HTTP hop. Over HTTP the same tools are served on
``/mcp`` by ``llmeco serve``, behind API keys.

stdio has no API key: the server runs with the full rights of the local user who starts it,
like ``llmeco kb`` commands (every model and knowledge base, no limits). Each tool call is
recorded in the audit ledger with actor ``stdio``. stdout carries only the protocol; logs
and start-up messages go to stderr.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

mcp_app = typer.Typer(
    help="MCP server: knowledge bases, tasks and models as tools for other agents.",
    no_args_is_help=True,
)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@mcp_app.command("serve")
def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "-m", help="Model reference to serve (repeat for several). Default: default."
        ),
    ] = None,
    embeddings: Annotated[
        bool,
        typer.Option(help="Load the embedding model (knowledge-base search needs it)."),
    ] = True,
    classifier: Annotated[
        list[str] | None,
        typer.Option(
            "--classifier",
            help="NAME=REF: a trained classifier the classify and sentiment tools may use as "
            "model NAME. Repeat for several.",
        ),
    ] = None,
) -> None:
    """Serve MCP over stdin/stdout, with the local user's full rights (no API key).

    Every tool call is recorded in the audit ledger with actor "stdio".
    """
    from llmeco.observability.logging import configure_logging
    from llmeco.server.mcp.stdio import serve_stdio
    from llmeco.server.runtime import ServerRuntime
    from llmeco.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, stream=sys.stderr)

    async def run() -> None:
        async with ServerRuntime.open(
            settings,
            model or [settings.default_model],
            auth=False,
            embeddings=embeddings,
            classifiers=classifier or [],
            announce=_to_stderr,
        ) as runtime:
            _to_stderr(f"llmeco MCP server on stdio: {', '.join(runtime.state.engines)}")
            await serve_stdio(runtime.state)

    asyncio.run(run())
