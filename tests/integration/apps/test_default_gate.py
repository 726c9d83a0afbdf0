"""The shipped answerability gate is what ``benchmarks/support.py --calibrate --write``
produces from the shipped calibration sets: refit it here and compare. A change to how the
signals are computed that is not followed by a refit fails this test."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from llmeco.apps.answerability import default_gate
from llmeco.apps.calibration import calibrate
from llmeco.rag.kb import KnowledgeBase
from llmeco.settings import Settings
from llmeco.store import Store

if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
QUESTIONS = ROOT / "examples" / "kb-questions"


def test_refitting_on_the_calibration_sets_gives_the_shipped_gate(
    tmp_path: Path, embedder: Embedder
) -> None:
    store = Store.from_settings(Settings(home=tmp_path))
    kb = KnowledgeBase.create(store, "handbook", embedder)
    kb.add_file(ROOT / "examples" / "corpus" / "handbook.md")
    gate = calibrate(
        kb,
        embedder,
        embedder.name,
        QUESTIONS / "calibration.jsonl",
        QUESTIONS / "calibration-unanswerable.jsonl",
    )
    shipped = default_gate()
    assert gate.embed_model == shipped.embed_model
    for fitted, expected in (
        (gate.coef, shipped.coef),
        (gate.mean, shipped.mean),
        (gate.scale, shipped.scale),
        ((gate.intercept, gate.threshold), (shipped.intercept, shipped.threshold)),
    ):
        assert fitted == pytest.approx(expected, rel=1e-3, abs=1e-4)
    assert gate.fitted_on["out_of_fold"] == shipped.fitted_on["out_of_fold"]
    assert gate.fitted_on["out_of_fold"]["handoff_unanswerable"] >= 0.8
