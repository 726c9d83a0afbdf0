"""``llmeco serve`` refuses bad gateway options before loading or binding anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeco.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--upstream", "nourl"], "expected NAME=URL"),
        (["--upstream", "a=ftp://x/v1"], "is not an http(s) URL"),
        (["--upstream", "a=http://x", "--upstream-key-env", "GW_TEST_UNSET"], "GW_TEST_UNSET"),
        (["--models-config", "{config}"], "upstreams[0].timeout: Input should be greater than 0"),
    ],
)
def test_bad_gateway_options_are_usage_errors(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMECO_HOME", str(tmp_path))
    monkeypatch.delenv("GW_TEST_UNSET", raising=False)
    config = tmp_path / "models.yaml"
    config.write_text("upstreams:\n  - name: a\n    urls: [http://x]\n    timeout: -1\n")
    result = runner.invoke(app, ["serve", *(a.format(config=config) for a in args)])
    assert result.exit_code == 2
    assert message in result.output
