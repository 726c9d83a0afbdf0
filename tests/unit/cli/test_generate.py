"""`llmeco generate`: a fake engine checks what is sent and printed; the real one end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeco.cli.generate import terminal_safe
from llmeco.cli.main import app
from llmeco.engine import async_engine
from llmeco.engine.request import (
    ChatPrompt,
    Prompt,
    RequestOutput,
    SamplingParams,
    SequenceDelta,
)
from llmeco.settings import Settings

runner = CliRunner()


class FakeEngine:
    """Streams fixed pieces of text and records what it was asked."""

    pieces = ("[bold]Hi[/bold] ", "\x1b[31mthere", " :smile:")

    def __init__(self, ref: str, settings: Settings) -> None:
        self.ref, self.settings = ref, settings
        self.calls: list[tuple[Prompt, SamplingParams]] = []
        self.shut_down = False

    async def generate(
        self, prompt: Prompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        self.calls.append((prompt, params))
        for i, text in enumerate(self.pieces):
            last = i == len(self.pieces) - 1
            delta = SequenceDelta(0, [i], text, finish_reason="stop" if last else None)
            yield RequestOutput(request_id, [1, 2], [delta], finished=last)

    async def shutdown(self, timeout: float = 30.0) -> None:
        self.shut_down = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> list[FakeEngine]:
    made: list[FakeEngine] = []

    def from_ref(ref: str, settings: Settings, name: str | None = None) -> Any:
        made.append(FakeEngine(ref, settings))
        return made[-1]

    monkeypatch.setattr(async_engine.AsyncEngine, "from_ref", staticmethod(from_ref))
    return made


def test_streams_model_text_literally(fake: list[FakeEngine]) -> None:
    result = runner.invoke(app, ["generate", "hello"])
    assert result.exit_code == 0, result.output
    # no rich markup or emoji codes interpreted, no terminal escapes let through
    assert result.stdout == "[bold]Hi[/bold] [31mthere :smile:\n"
    (engine,) = fake
    assert engine.ref == "default" and engine.shut_down
    (prompt, params), *_ = engine.calls
    assert prompt == ChatPrompt([{"role": "user", "content": "hello"}])
    assert params.max_tokens == 256 and params.temperature == 0.0


def test_options_reach_the_engine(fake: list[FakeEngine]) -> None:
    args = ["generate", "-m", "some/dir", "--system", "Be brief.", "--max-tokens", "7"]
    args += ["--temperature", "0.5", "--top-p", "0.9", "--seed", "3", "--stats", "hi"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 tokens in" in result.stderr and "tokens" not in result.stdout
    (engine,) = fake
    (prompt, params), *_ = engine.calls
    assert engine.ref == "some/dir"
    assert prompt == ChatPrompt(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    )
    assert (params.max_tokens, params.temperature, params.top_p, params.seed) == (7, 0.5, 0.9, 3)


def test_raw_prompt_from_stdin(fake: list[FakeEngine]) -> None:
    result = runner.invoke(app, ["generate", "--raw", "-"], input="Once upon a time")
    assert result.exit_code == 0, result.output
    assert fake[0].calls[0][0] == "Once upon a time"


def test_default_model_comes_from_settings(
    fake: list[FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMECO_DEFAULT_MODEL", "/models/mine")
    assert runner.invoke(app, ["generate", "x"]).exit_code == 0
    assert fake[0].ref == "/models/mine"


def test_bad_sampling_parameter_is_a_usage_error(fake: list[FakeEngine]) -> None:
    result = runner.invoke(app, ["generate", "--top-p", "0", "x"])
    assert result.exit_code == 2 and "top_p" in result.stderr
    assert fake == []  # refused before loading anything


def test_terminal_safe_keeps_newlines_and_tabs() -> None:
    assert terminal_safe("a\tb\nc\r\x07\x1b[0m\x9bd") == "a\tb\nc[0md"


def test_generate_answers_with_the_default_model(
    default_model_dir: Path, cached_home: Path
) -> None:
    result = runner.invoke(
        app,
        ["generate", "--max-tokens", "16", "What is the capital of France?"],
        env={"LLMECO_HOME": str(cached_home), "LLMECO_DEVICE": "cpu"},
    )
    assert result.exit_code == 0, result.output
    assert "Paris" in result.stdout


def test_generate_with_a_tiny_model_directory(tiny_llama_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["generate", "--model", str(tiny_llama_dir), "--max-tokens", "5", "--seed", "1", "hi"],
        env={"LLMECO_HOME": str(tmp_path), "LLMECO_DEVICE": "cpu"},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("\n") and len(result.stdout) > 1


def test_generate_refuses_pickles_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x80\x04")
    result = runner.invoke(app, ["generate", "--model", str(bad), "hi"])
    assert result.exit_code == 2
    assert "pickled" in result.stderr and "Traceback" not in result.output
