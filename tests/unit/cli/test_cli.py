"""The CLI through typer's runner: help, version, streamed generation, clean errors."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from llmeco import __version__
from llmeco.cli.main import app

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "generate" in result.output and "version" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.output.strip() == __version__


def test_generate_streams_a_reply(default_model_dir: Path, cached_home: Path) -> None:
    result = runner.invoke(
        app,
        ["generate", "--model", str(default_model_dir), "--max-tokens", "12", "What is 2+2?"],
        env={"LLMECO_HOME": str(cached_home)},
    )
    assert result.exit_code == 0, result.output
    assert len(result.output.strip()) > 0


def test_generate_refuses_pickles_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x80\x04")
    result = runner.invoke(app, ["generate", "--model", str(bad), "hi"])
    assert result.exit_code == 2
    assert "pickled" in result.output
