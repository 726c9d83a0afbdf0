"""The answerability gate: features, fitting, the threshold rule, JSON, the shipped gate."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from llmeco.apps.answerability import (
    FEATURES,
    Gate,
    Signals,
    choose_threshold,
    default_gate,
    fit_gate,
    fit_pooled_gate,
    open_gate,
)
from llmeco.apps.support.calibration import read_questions
from llmeco.errors import ConfigError, NotFound

ROOT = Path(__file__).resolve().parents[3]


def test_signals_become_the_feature_vector() -> None:
    s = Signals(0.42, (1.0, 0.55, 0.3, 0.65), 0.7)
    assert s.vector() == pytest.approx([0.42, 0.75, 0.5, 0.3, 0.625, 0.7])
    assert Signals(0.1, ()).vector() == [0.1, 1.0, 1.0, 1.0, 1.0, 0.0]  # no content words
    assert len(s.vector()) == len(FEATURES)


def test_threshold_answers_the_most_while_reaching_the_handoff_target() -> None:
    a = np.array([0.9, 0.8, 0.7, 0.35, 0.2])
    u = np.array([0.1, 0.2, 0.3, 0.4, 0.75])
    # 4 of 5 unanswerable must be handed off: the threshold must lie above 0.4
    t = choose_threshold(a, u, 0.8)
    assert t == 0.7 and (a >= t).sum() == 3 and (u < t).sum() == 4
    # all five: only above 0.75
    assert choose_threshold(a, u, 1.0) == 0.8
    # nothing separable: a threshold over every probability hands off everything
    assert choose_threshold(np.array([0.5]), np.array([0.9]), 1.0) > 0.9


def test_fit_separates_what_the_signals_separate_and_reports_out_of_fold_rates() -> None:
    rng = np.random.default_rng(0)
    answerable = [Signals(0.6 + 0.2 * rng.random(), (1.0, 1.0, 0.8)) for _ in range(30)]
    unanswerable = [Signals(0.2 + 0.2 * rng.random(), (1.0, 0.3)) for _ in range(20)]
    gate = fit_gate(answerable, unanswerable, embed_model="m", sources={"note": "synthetic"})
    assert all(map(gate.answers, answerable)) and not any(map(gate.answers, unanswerable))
    oof = gate.fitted_on["out_of_fold"]
    assert oof == {"answered": 1.0, "handoff_unanswerable": 1.0, "auc": 1.0}
    assert gate.fitted_on["note"] == "synthetic" and gate.fitted_on["answerable"] == 30
    # more similar → more likely answerable, all else equal
    assert gate.probability(Signals(0.7, (1.0,))) > gate.probability(Signals(0.3, (1.0,)))


def test_fit_keeps_the_handoff_target_on_overlapping_signals() -> None:
    rng = np.random.default_rng(1)
    answerable = [Signals(float(x), (1.0, 0.7)) for x in rng.normal(0.55, 0.1, 60)]
    unanswerable = [Signals(float(x), (1.0, 0.7)) for x in rng.normal(0.4, 0.1, 30)]
    gate = fit_gate(answerable, unanswerable, embed_model="m", handoff_target=0.9)
    oof = gate.fitted_on["out_of_fold"]
    assert oof["handoff_unanswerable"] >= 0.9 and 0.0 < oof["answered"] < 1.0
    assert 0.6 < oof["auc"] < 1.0


def test_fit_needs_enough_questions_of_each_kind() -> None:
    few = [Signals(0.5, (1.0,))] * 4
    with pytest.raises(ConfigError, match="at least 5"):
        fit_gate(few * 5, few, embed_model="m")


def test_gate_json_round_trip_and_bad_gates_are_refused() -> None:
    gate = default_gate()
    assert Gate.from_json(gate.to_json()) == gate
    data = json.loads(gate.to_json())
    for broken in (
        "not json",
        json.dumps({**data, "features": ["sentence_similarity"]}),
        json.dumps({**data, "coef": data["coef"][:2]}),
        json.dumps({**data, "scale": [0.0] * len(FEATURES)}),
        json.dumps({**data, "threshold": "NaN"}),
        json.dumps({k: v for k, v in data.items() if k != "intercept"}),
    ):
        with pytest.raises(ConfigError):
            Gate.from_json(broken)
    assert math.isclose(open_gate().probability(Signals(0.0, ())), 0.5)
    assert open_gate().answers(Signals(0.0, ()))
    assert dataclasses.replace(open_gate(), threshold=0.6).answers(Signals(0.9, ())) is False


def test_the_shipped_gate_was_fitted_on_the_shipped_calibration_sets() -> None:
    gate = default_gate()
    assert gate.embed_model == "all-minilm-l6-v2"
    files = gate.fitted_on["files"]
    for name in ("calibration.jsonl", "calibration-unanswerable.jsonl"):
        path = f"examples/kb-questions/{name}"
        assert files[path] == hashlib.sha256((ROOT / path).read_bytes()).hexdigest()
    held_out = [
        m.parent.name
        for m in (ROOT / "examples/handbooks").glob("*/handbook.json")
        if json.loads(m.read_text()).get("held_out")
    ]
    assert held_out and not any(f"/{name}/" in path for path in files for name in held_out)
    kbs = gate.fitted_on["knowledge_bases"]
    assert len(kbs) >= 3 and not set(kbs) & set(held_out)
    answerable = ROOT / "examples/kb-questions/calibration.jsonl"
    assert kbs["handbook"]["answerable"] == len(read_questions(answerable))
    assert gate.fitted_on["out_of_kb"]["handoff_unanswerable"] >= 0.85


def _kb(
    shift: float, rng: np.random.Generator, words: tuple[float, float] = (0.9, 0.4)
) -> tuple[list[Signals], list[Signals]]:
    """A knowledge base whose sentence similarities all sit ``shift`` higher (another writing
    style); ``words`` are the closest-word similarities of its answerable / unanswerable
    questions."""
    answerable = [Signals(shift + 0.6 + 0.15 * rng.random(), (1.0, words[0])) for _ in range(25)]
    unanswerable = [Signals(shift + 0.35 + 0.15 * rng.random(), (1.0, words[1])) for _ in range(12)]
    return answerable, unanswerable


def test_pooled_gate_reports_each_knowledge_base_scored_by_a_gate_fitted_on_the_others() -> None:
    rng = np.random.default_rng(2)
    sets = {"a": _kb(0.0, rng), "b": _kb(0.05, rng), "c": _kb(-0.05, rng)}
    gate = fit_pooled_gate(sets, embed_model="m", sources={"note": "synthetic"})
    out = gate.fitted_on["out_of_kb"]
    assert set(out) == {"answered", "handoff_unanswerable", "auc", "by_kb"}
    assert set(out["by_kb"]) == {"a", "b", "c"}
    assert out["handoff_unanswerable"] >= 0.85 and out["answered"] > 0.5
    assert gate.fitted_on["knowledge_bases"]["b"] == {"answerable": 25, "unanswerable": 12}
    assert gate.fitted_on["note"] == "synthetic"
    for answerable, unanswerable in sets.values():
        assert sum(map(gate.answers, answerable)) > sum(map(gate.answers, unanswerable))


def test_pooled_threshold_accounts_for_a_knowledge_base_unlike_the_others() -> None:
    """One knowledge base scores every question higher: in its leave-one-out round the gate
    fitted on the others answers more of its unanswerable questions, which its reported rate
    shows, and the threshold rises until the pooled target holds anyway, at a cost to the
    other knowledge bases' answered rate that a fit never leaving a KB out would not pay."""
    rng = np.random.default_rng(3)
    same = (0.8, 0.8)  # only sentence similarity tells the kinds apart
    alike = {"a": _kb(0.0, rng, same), "b": _kb(0.0, rng, same)}
    gate = fit_pooled_gate({**alike, "odd": _kb(0.15, rng, same)}, embed_model="m")
    out = gate.fitted_on["out_of_kb"]
    by_kb = out["by_kb"]
    assert by_kb["odd"]["handoff_unanswerable"] < by_kb["a"]["handoff_unanswerable"] == 1.0
    assert out["handoff_unanswerable"] >= 0.85
    without_odd = fit_pooled_gate(alike, embed_model="m").fitted_on["out_of_kb"]
    assert by_kb["a"]["answered"] < without_odd["by_kb"]["a"]["answered"] == 1.0


def test_pooled_gate_needs_two_knowledge_bases_with_enough_questions() -> None:
    rng = np.random.default_rng(4)
    with pytest.raises(ConfigError, match="at least two"):
        fit_pooled_gate({"a": _kb(0.0, rng)}, embed_model="m")
    few = ([Signals(0.5, (1.0,))] * 4, [Signals(0.2, (1.0,))] * 9)
    with pytest.raises(ConfigError, match="at least 5"):
        fit_pooled_gate({"a": _kb(0.0, rng), "b": few}, embed_model="m")


def test_question_files_are_checked_line_by_line(tmp_path: Path) -> None:
    good = tmp_path / "q.jsonl"
    good.write_text('{"query": "Where are you?"}\n\n{"query": "When?", "answer": "x"}\n')
    assert read_questions(good) == ["Where are you?", "When?"]
    with pytest.raises(NotFound):
        read_questions(tmp_path / "missing.jsonl")
    for text, where in (('{"query": 1}\n', ":1:"), ('{"query": "a"}\n{oops\n', ":2:")):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=where):
            read_questions(bad)
