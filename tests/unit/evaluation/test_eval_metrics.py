"""Metric functions against the libraries' own outputs and hand-computed values."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from llmeco.evaluation import metrics as M

HYPS = [
    "Standard delivery takes three to five working days.",
    "The battery can be charged in about four hours.",
    "We ship abroad to most EU countries, the cost is 25 euros.",
    "Yes.",
    "Returns are free within thirty days of delivery, just use the label.",
]
REFS = [
    "Standard delivery takes three to five working days.",
    "A full charge takes about four and a half hours.",
    "We deliver to every EU country; shipping abroad costs twenty-five euros.",
    "Yes, the courier calls about thirty minutes before arriving.",
    "You can return a bicycle within thirty days; the return label is free.",
]


def test_bleu_and_chrf_equal_the_sacrebleu_cli(tmp_path: Path) -> None:
    """Must-show 1: BLEU/chrF equal sacrebleu's own CLI on the same files."""
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("\n".join(HYPS) + "\n")
    ref.write_text("\n".join(REFS) + "\n")
    cli = Path(sys.executable).parent / "sacrebleu"
    out = subprocess.run(
        [str(cli), str(ref), "-i", str(hyp), "-m", "bleu", "chrf", "-w", "6"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    scores = {item["name"]: item["score"] for item in json.loads(out)}
    refs = [[r] for r in REFS]
    assert M.bleu(HYPS, refs) == pytest.approx(scores["BLEU"], abs=1e-5)
    assert M.chrf(HYPS, refs) == pytest.approx(scores["chrF2"], abs=1e-5)
    assert 0 < scores["BLEU"] < 100


def test_rouge_matches_rouge_score_directly() -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    got = M.rouge(HYPS, [[r] for r in REFS])
    for kind in ("rouge1", "rouge2", "rougeL"):
        scores = [scorer.score(r, h)[kind].fmeasure for h, r in zip(HYPS, REFS, strict=True)]
        want = sum(scores) / len(HYPS)
        assert got[kind] == pytest.approx(want)


def test_exact_match_and_token_f1_use_squad_normalisation() -> None:
    assert M.exact_match("The Harbour!", ["harbour"]) == 1.0
    assert M.exact_match("a harbour bike", ["harbour"]) == 0.0
    # pred tokens: three to five days; gold: three to five working days → P=1, R=4/5
    assert M.token_f1("three to five days", ["Three to five working days."]) == pytest.approx(
        2 * 1 * 0.8 / 1.8
    )
    assert M.token_f1("no overlap", ["entirely different"]) == 0.0
    assert M.token_f1("x", ["nothing", "x"]) == 1.0  # best reference


def test_keyword_recall_counts_groups_of_alternatives() -> None:
    groups = [["three to five", "3-5"], ["working days"]]
    assert M.keyword_recall("It takes 3-5 working days", groups) == 1.0
    assert M.keyword_recall("It takes 3-5 days", groups) == 0.5
    out = M.generation_metrics(
        ["3-5 days", "working days", "x"], [["a"], ["b"], ["c"]], [groups, groups, []]
    )
    assert out["keyword_recall"] == 0.5 and out["keyword_all"] == 0.0


def test_classification_metrics_match_sklearn_and_count_other_predictions() -> None:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    labels = ["a", "b", "c"]
    gold = ["a", "a", "b", "b", "c", "c"]
    pred = ["a", "b", "b", "b", "c", "zzz"]
    metrics, details = M.classification_metrics(gold, pred, labels)
    mapped = [p if p in labels else "(other)" for p in pred]
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    kw = {"labels": labels, "average": "macro", "zero_division": 0}
    assert metrics["macro_f1"] == pytest.approx(f1_score(gold, mapped, **kw))
    assert metrics["macro_precision"] == pytest.approx(precision_score(gold, mapped, **kw))
    assert metrics["macro_recall"] == pytest.approx(recall_score(gold, mapped, **kw))
    assert details["labels"] == ["a", "b", "c", "(other)"]
    assert details["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 1]]
    assert "roc_auc" not in metrics

    probs = [
        [0.8, 0.1, 0.1],
        [0.4, 0.5, 0.1],
        [0.2, 0.7, 0.1],
        [0.1, 0.8, 0.1],
        [0.1, 0.1, 0.8],
        [0.3, 0.3, 0.4],
    ]
    metrics, _ = M.classification_metrics(gold, pred, labels, probs)
    want = roc_auc_score(gold, probs, multi_class="ovr", average="macro", labels=labels)
    assert metrics["roc_auc"] == pytest.approx(want)


def test_binary_roc_auc_is_the_positive_label_auc() -> None:
    from sklearn.metrics import roc_auc_score

    gold = ["neg", "pos", "pos", "neg", "pos"]
    probs = [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8], [0.1, 0.9]]
    got = M.roc_auc_ovr(gold, probs, ["neg", "pos"])
    assert got == pytest.approx(roc_auc_score([g == "pos" for g in gold], [p[1] for p in probs]))


def test_multiple_choice_acc_norm_divides_by_utf8_bytes() -> None:
    # item 0: raw loglik prefers choice 1 (-4 > -6) but per byte choice 0 wins (-6/12 > -4/2)
    logliks = [[-6.0, -4.0], [-1.0, -2.0]]
    nbytes = [[12, 2], [3, 3]]
    metrics, pred, pred_norm = M.multiple_choice_metrics(logliks, nbytes, [0, 0])
    assert pred == [1, 0] and pred_norm == [0, 0]
    assert metrics == {"acc": 0.5, "acc_norm": 1.0}


def test_retrieval_metrics_hit_at_k_and_mrr() -> None:
    ranked = [["x", "a", "y"], ["b", "z", "w"], ["q", "r", "s"]]
    relevant = [["a"], ["b", "c"], ["a"]]
    metrics, ranks = M.retrieval_metrics(ranked, relevant, [1, 3])
    assert ranks == [2, 1, None]
    assert metrics["hit@1"] == pytest.approx(1 / 3)
    assert metrics["hit@3"] == pytest.approx(2 / 3)
    assert metrics["mrr"] == pytest.approx((0.5 + 1.0) / 3)


def test_perplexity_metrics_and_direction() -> None:
    out = M.perplexity_metrics(nll_sum=20.0, tokens=10, n_bytes=40)
    assert out["perplexity"] == pytest.approx(math.exp(2.0))
    assert out["bits_per_byte"] == pytest.approx(20.0 / math.log(2) / 40)
    assert M.lower_is_better("care_ppl.perplexity") and not M.lower_is_better("mc.acc")
