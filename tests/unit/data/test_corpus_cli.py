"""`llmeco data prepare --corpus/--config/--languages` and `llmeco data report`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from llmeco.cli.main import app
from llmeco.data.synthetic_web import write_corpus

runner = CliRunner()


def test_prepare_corpus_then_report(tmp_path: Path) -> None:
    write_corpus(tmp_path / "in" / "web.jsonl.zst", 0.3, seed=2)
    config = tmp_path / "prep.yaml"
    config.write_text("near_dedup:\n  threshold: 0.7\nline_dedup:\n  min_docs: 4\n")
    out = tmp_path / "ds"
    args = [
        "data",
        "prepare",
        str(tmp_path / "in"),
        "--out",
        str(out),
        "--config",
        str(config),
        "--languages",
        "en",
        "--set",
        "gopher_quality.min_stop_words=3",
        "--shard-mb",
        "0.1",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "llmeco data report" in result.output and "validation 0" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    corpus = manifest["options"]["corpus"]
    assert corpus["near_dedup"]["threshold"] == 0.7 and corpus["line_dedup"]["min_docs"] == 4
    assert corpus["gopher_quality"]["min_stop_words"] == 3 and corpus["validation_fraction"] == 0
    assert corpus["language"]["languages"] == ["en"] and manifest["counts"]["shards"] >= 3
    assert set(manifest["languages"]["after"]) == {"en"}
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0

    result = runner.invoke(app, ["data", "report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report" / "report.html").read_text()
    for png in ("funnel.png", "lengths.png", "languages.png"):
        assert (out / "report" / png).read_bytes()[:4] == b"\x89PNG" and png in page
    assert "gopher_quality" in page and "<pre>" in page  # the steps with their examples

    bad = runner.invoke(
        app,
        [
            "data",
            "prepare",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "x"),
            "--set",
            "c4.nope=1",
        ],
    )
    assert bad.exit_code == 2 and "nope" in bad.output


def test_report_on_a_plain_dataset(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text("Our shop sells bicycles and helmets to riders everywhere.\n")
    assert (
        runner.invoke(
            app, ["data", "prepare", str(src), "--out", str(tmp_path / "ds"), "--validation", "0"]
        ).exit_code
        == 0
    )
    result = runner.invoke(app, ["data", "report", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ds" / "report" / "funnel.png").is_file()
