"""The one CLI: ``llmeco``. Each command group lives in its own module under ``cli/``.

Library errors are turned into short red messages here, in one place.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from llmeco import __version__
from llmeco.errors import InvalidRequest, LlmecoError, NotFound, UnsafeFile

app = typer.Typer(
    name="llmeco",
    help="From raw text to a governed language-model service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Print llmeco errors as one clear line and exit non-zero (2 for usage-type errors)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LlmecoError as exc:
            err.print(f"[red]error:[/red] {exc.message}", markup=True, highlight=False)
            code = 2 if isinstance(exc, NotFound | UnsafeFile | InvalidRequest) else 1
            raise typer.Exit(code) from exc

    return wrapper  # type: ignore[return-value]


@app.command()
def version() -> None:
    """Print the llmeco version."""
    typer.echo(__version__)


@app.command()
@handle_errors
def generate(
    prompt: Annotated[str, typer.Argument(help="What to ask the model.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model reference.")] = "default",
    max_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible sampling.")] = None,
    system: Annotated[str | None, typer.Option(help="Optional system message.")] = None,
    raw: Annotated[
        bool, typer.Option(help="Send the prompt as plain text, no chat template.")
    ] = False,
) -> None:
    """Generate a reply from a model, streamed to the terminal."""
    from llmeco.engine.async_engine import AsyncEngine
    from llmeco.engine.request import ChatPrompt, Prompt, SamplingParams
    from llmeco.settings import Settings

    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    prompt_in: Prompt
    if raw:
        prompt_in = prompt
    else:
        messages = [{"role": "system", "content": system}] if system else []
        prompt_in = ChatPrompt([*messages, {"role": "user", "content": prompt}])
    engine = AsyncEngine.from_ref(model, Settings())

    async def run() -> None:
        try:
            async for out in engine.generate(prompt_in, params, f"cli-{uuid.uuid4().hex}"):
                for delta in out.deltas:
                    sys.stdout.write(delta.text)
                    sys.stdout.flush()
            sys.stdout.write("\n")
        finally:
            await engine.shutdown(timeout=0)

    asyncio.run(run())
