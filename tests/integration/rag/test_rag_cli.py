"""`llmeco kb …` end to end with the real embedding model, checking the store afterwards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from llmeco.apps.answerability import Gate
from llmeco.apps.support.calibration import GateStore
from llmeco.cli.main import app
from llmeco.rag.kb import TextEmbedder
from llmeco.settings import Settings
from llmeco.store import Store

pytestmark = pytest.mark.slow


def test_kb_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm: TextEmbedder) -> None:
    monkeypatch.setenv("LLMECO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMECO_DATABASE_URL", raising=False)
    docs = tmp_path / "docs"
    shutil.copytree("examples/corpus", docs)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    runner = CliRunner()

    assert runner.invoke(app, ["kb", "create", "support"]).exit_code == 0
    result = runner.invoke(app, ["kb", "add", "support", str(docs)])
    assert result.exit_code == 1  # one file failed ...
    assert "broken.pdf" in result.output  # ... and is named
    assert "3 added, 1 failed" in result.output  # ... and the others went in
    again = runner.invoke(app, ["kb", "add", "support", str(docs / "handbook.md")])
    assert again.exit_code == 0 and "1 unchanged" in again.output

    found = runner.invoke(app, ["kb", "search", "support", "How long do refunds take?", "--json"])
    assert found.exit_code == 0
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert len(hits) == 5
    assert hits[0]["doc"] == "handbook.md" and hits[0]["section"].endswith("Refunds")
    assert "ten working days" in hits[0]["text"]

    listed = runner.invoke(app, ["kb", "list"])
    assert listed.exit_code == 0 and "support" in listed.output
    docs_listed = runner.invoke(app, ["kb", "list", "support"])
    assert "handbook.md" in docs_listed.output and "faq.html" in docs_listed.output

    assert runner.invoke(app, ["kb", "remove", "support", "faq.html"]).exit_code == 0
    missing = runner.invoke(app, ["kb", "remove", "support", "faq.html"])
    assert missing.exit_code == 2 and "no document 'faq.html'" in missing.output
    unknown = runner.invoke(app, ["kb", "search", "nope", "x"])
    assert unknown.exit_code == 2 and "no knowledge base named 'nope'" in unknown.output

    store = Store.from_settings(Settings(home=tmp_path / "home"))
    with store.session() as s:
        names = s.execute(sa.text("SELECT name FROM kb_documents ORDER BY name")).scalars().all()
        assert names == ["handbook.md", "history.txt"]
        orphans = s.execute(
            sa.text(
                "SELECT count(*) FROM kb_chunks c LEFT JOIN kb_documents d ON d.id = c.doc_id "
                "WHERE d.id IS NULL"
            )
        ).scalar_one()
        assert orphans == 0


def test_kb_calibrate_stores_a_gate_the_assistant_then_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm: TextEmbedder
) -> None:
    monkeypatch.setenv("LLMECO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMECO_DATABASE_URL", raising=False)
    questions = Path("examples/kb-questions")
    answerable, unanswerable = tmp_path / "a.jsonl", tmp_path / "u.jsonl"
    answerable.write_text(
        "".join((questions / "calibration.jsonl").read_text().splitlines(True)[:12])
    )
    unanswerable.write_text(
        "".join((questions / "calibration-unanswerable.jsonl").read_text().splitlines(True)[:8])
    )
    runner = CliRunner()
    assert runner.invoke(app, ["kb", "create", "shop"]).exit_code == 0
    assert runner.invoke(app, ["kb", "add", "shop", "examples/corpus/handbook.md"]).exit_code == 0

    dry = runner.invoke(
        app, ["kb", "calibrate", "shop", str(answerable), str(unanswerable), "--dry-run"]
    )
    assert dry.exit_code == 0 and "not stored" in dry.output
    store = Store.from_settings(Settings(home=tmp_path / "home"))
    assert GateStore(store).get("shop") is None

    done = runner.invoke(
        app,
        ["kb", "calibrate", "shop", str(answerable), str(unanswerable), "--handoff-target", "1"],
    )
    assert done.exit_code == 0, done.output
    gate = GateStore(store).get("shop")
    assert gate is not None and gate == Gate.from_json(done.stdout)
    assert gate.fitted_on["answerable"] == 12 and gate.fitted_on["unanswerable"] == 8
    assert gate.fitted_on["knowledge_base"] == "shop"
    assert gate.fitted_on["out_of_fold"]["handoff_unanswerable"] == 1.0
    assert set(gate.fitted_on["files"]) == {str(answerable), str(unanswerable)}

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no query field"}\n')
    refused = runner.invoke(app, ["kb", "calibrate", "shop", str(answerable), str(bad)])
    assert refused.exit_code == 2 and "bad.jsonl:1" in refused.output
    few = runner.invoke(
        app, ["kb", "calibrate", "shop", str(answerable), str(answerable)[:-6] + "x"]
    )
    assert few.exit_code == 2
    assert GateStore(store).get("shop") == gate  # a failed calibration keeps the stored gate

    assert runner.invoke(app, ["kb", "delete", "shop", "--yes"]).exit_code == 0
    assert GateStore(store).get("shop") is None
