"""The CLI shell: help, version, and llmeco errors turned into clean messages and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from llmeco import __version__
from llmeco.cli.main import LlmecoGroup, app, exit_code_for
from llmeco.errors import (
    ConfigError,
    ContextLengthExceeded,
    EngineDead,
    GenerateError,
    LlmecoError,
    NotFound,
    UnsafeFile,
)

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "generate" in result.output and "version" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.output.strip() == __version__


def test_help_does_not_import_torch() -> None:
    """`llmeco --help` must stay fast: heavy libraries load inside commands only."""
    code = "import sys; from llmeco.cli.main import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError("x"), 2),
        (NotFound("x"), 2),
        (UnsafeFile("x"), 2),
        (ContextLengthExceeded(10, 10, 16), 2),
        (GenerateError("x"), 1),
        (EngineDead("x"), 1),
        (LlmecoError("x"), 1),
    ],
)
def test_exit_codes(exc: LlmecoError, code: int) -> None:
    assert exit_code_for(exc) == code


def _failing_app(exc: BaseException) -> typer.Typer:
    """A throwaway app with the real group class, whose one command raises ``exc``."""
    t = typer.Typer(cls=LlmecoGroup)

    @t.command()
    def boom() -> None:
        raise exc

    @t.command()
    def other() -> None: ...

    return t


def test_errors_are_one_red_line_without_traceback() -> None:
    result = runner.invoke(_failing_app(NotFound("model 'x' [bold]not[/bold] found")), ["boom"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: model 'x' [bold]not[/bold] found"  # no markup
    assert result.stdout == "" and "Traceback" not in result.output

    result = runner.invoke(_failing_app(GenerateError("sampling failed")), ["boom"])
    assert result.exit_code == 1 and "sampling failed" in result.stderr


def test_ctrl_c_exits_130() -> None:
    result = runner.invoke(_failing_app(KeyboardInterrupt()), ["boom"])
    assert result.exit_code == 130 and "interrupted" in result.stderr


def test_other_exceptions_are_not_hidden() -> None:
    result = runner.invoke(_failing_app(ZeroDivisionError("bug")), ["boom"])
    assert result.exit_code == 1 and isinstance(result.exception, ZeroDivisionError)


def test_python_dash_m_llmeco_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "llmeco", "version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == __version__


def test_torchrun_workers_run_the_same_train_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each worker runs ``python -m llmeco train TASK ARGS``: the CLI itself, no other entry."""
    import torch

    from llmeco.training import distributed

    commands: list[list[str]] = []

    def call(command: list[str], env: dict[str, str]) -> int:
        commands.append(command)
        return 0

    monkeypatch.setattr(subprocess, "call", call)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.launch(2, "sft", ["--config=run.yaml", "--resume"]) == 0
    (command,) = commands
    assert "--nproc_per_node=2" in command
    assert command[-6:] == ["-m", "llmeco", "train", "sft", "--config=run.yaml", "--resume"]


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--tool-parser", "pythonic"], {}), ([], {"LLMECO_TOOL_PARSER": "pythonic"})],
)
def test_serve_refuses_an_unknown_tool_parser(args: list[str], env: dict[str, str]) -> None:
    result = runner.invoke(app, ["serve", "--no-auth", *args], env=env)
    assert result.exit_code == 2
    assert "unknown tool parser 'pythonic'; choose one of hermes" in result.stderr
