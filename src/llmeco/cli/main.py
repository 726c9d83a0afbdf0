"""The one CLI: ``llmeco``. Each command (group) lives in its own module under ``cli/``.

Library errors become one short red line on stderr here, in :class:`LlmecoGroup`, for every
command at once — commands just raise :class:`~llmeco.errors.LlmecoError`. Exit codes:

* ``2`` — the user must change something: a bad option or setting, an unknown model, a file
  we refuse to read (``ConfigError``, ``InvalidRequest``, ``NotFound``, ``UnsafeFile``);
* ``1`` — anything else that failed (``GenerateError``, ``EngineDead`` …);
* ``130`` — interrupted with Ctrl-C.

Command modules import heavy libraries (torch, transformers, the engine) inside the
command function so that ``llmeco --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from llmeco import __version__
from llmeco.cli.audit import audit_app
from llmeco.cli.backup import backup_app
from llmeco.cli.data import data_app, tokenizer_app
from llmeco.cli.eval import eval_app
from llmeco.cli.feedback import feedback_app
from llmeco.cli.generate import generate
from llmeco.cli.kb import kb_app
from llmeco.cli.keys import keys_app
from llmeco.cli.mcp import mcp_app
from llmeco.cli.models import models_app
from llmeco.cli.plugins import plugins_app
from llmeco.cli.serve import serve
from llmeco.cli.top import top
from llmeco.cli.train import train_app
from llmeco.cli.tune import tune
from llmeco.errors import ConfigError, InvalidRequest, LlmecoError, NotFound, UnsafeFile

#: Errors the user fixes by changing their input; reported with exit code 2 like usage errors.
USAGE_ERRORS: tuple[type[LlmecoError], ...] = (ConfigError, InvalidRequest, NotFound, UnsafeFile)


def exit_code_for(exc: LlmecoError) -> int:
    """The process exit code reporting ``exc``: 2 for usage-type errors, 1 otherwise."""
    return 2 if isinstance(exc, USAGE_ERRORS) else 1


class LlmecoGroup(TyperGroup):
    """The command group: runs a command and turns llmeco errors into clean messages."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer vendors click privately)
        """Run the chosen command; report :class:`LlmecoError` / Ctrl-C without a traceback."""
        try:
            return super().invoke(ctx)
        except LlmecoError as exc:
            console = Console(stderr=True, highlight=False)
            console.print("error:", style="bold red", end=" ")
            console.print(exc.message, style="red", markup=False, soft_wrap=True)
            raise typer.Exit(exit_code_for(exc)) from exc
        except KeyboardInterrupt:
            Console(stderr=True).print("interrupted", style="yellow")
            raise typer.Exit(130) from None


app = typer.Typer(
    name="llmeco",
    cls=LlmecoGroup,
    help="From raw text to a governed language-model service.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold API keys
    add_completion=False,
)


@app.callback()
def main() -> None:
    """llmeco: data → training → evaluation → a governed, OpenAI-compatible model service."""


@app.command()
def version() -> None:
    """Print the llmeco version."""
    typer.echo(__version__)


app.command()(generate)
app.command()(serve)
app.command()(top)
app.add_typer(data_app, name="data")
app.add_typer(tokenizer_app, name="tokenizer")
app.add_typer(train_app, name="train")
app.command()(tune)
app.add_typer(kb_app, name="kb")
app.add_typer(audit_app, name="audit")
app.add_typer(backup_app, name="backup")
app.add_typer(keys_app, name="keys")
app.add_typer(feedback_app, name="feedback")
app.add_typer(eval_app, name="eval")
app.add_typer(models_app, name="models")
app.add_typer(mcp_app, name="mcp")
app.add_typer(plugins_app, name="plugins")
