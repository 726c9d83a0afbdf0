"""Metric functions: plain inputs in, plain numbers out; no model, no engine.

Conventions (every figure is reproducible with the library named):

* Fractions (accuracy, precision/recall/F1, exact match, token F1, ROUGE, hit@k, MRR) are in
  [0, 1]. BLEU and chrF are on sacrebleu's 0–100 scale, computed with ``sacrebleu``'s corpus
  functions and default settings, so they equal ``sacrebleu REF -i HYP -m bleu chrf``.
* Exact match and token F1 use the SQuAD normalisation (lower case, no punctuation, no
  articles, single spaces), the maximum over the references of an item.
* ROUGE-1/2/L are ``rouge-score`` F-measures with the Porter stemmer, mean over items (best
  reference per item).
* Classification: accuracy; macro precision/recall/F1 over the label set (sklearn, labels
  with no support count as 0); ROC-AUC one-vs-rest, the mean over labels that have both
  positive and negative gold items, when class probabilities are available.
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Sequence
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD answer normalisation: lower case, drop punctuation and articles, squeeze spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised reference."""
    norm = normalize_answer(prediction)
    return float(any(norm == normalize_answer(r) for r in references))


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """SQuAD token-overlap F1, best over the references."""
    best = 0.0
    pred = normalize_answer(prediction).split()
    for ref in references:
        gold = normalize_answer(ref).split()
        if not pred or not gold:
            best = max(best, float(pred == gold))
            continue
        common = collections.Counter(pred) & collections.Counter(gold)
        same = sum(common.values())
        if same:
            precision, recall = same / len(pred), same / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def keyword_recall(prediction: str, groups: Sequence[Sequence[str]]) -> float:
    """Share of keyword groups with at least one alternative in ``prediction`` (case-folded)."""
    if not groups:
        return 1.0
    text = prediction.casefold()
    return sum(any(k.casefold() in text for k in group) for group in groups) / len(groups)


def _ref_streams(references: Sequence[Sequence[str]]) -> list[list[str]]:
    """sacrebleu wants one list per reference *position*; use every reference when all items
    have the same number of them, else the first of each."""
    counts = {len(r) for r in references}
    width = counts.pop() if len(counts) == 1 else 1
    return [[refs[i] for refs in references] for i in range(width)]


def bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation, exp smoothing), 0–100."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), _ref_streams(references)).score)


def chrf(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus chrF2 (sacrebleu defaults: character 6-grams, beta 2), 0–100."""
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(predictions), _ref_streams(references)).score)


def rouge(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure (rouge-score, Porter stemmer), best reference per item."""
    from rouge_score import rouge_scorer

    kinds = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
    totals = dict.fromkeys(kinds, 0.0)
    for pred, refs in zip(predictions, references, strict=True):
        scores = [scorer.score(ref, pred) for ref in refs] or [scorer.score("", pred)]
        for kind in kinds:
            totals[kind] += max(s[kind].fmeasure for s in scores)
    n = max(1, len(predictions))
    return {kind: value / n for kind, value in totals.items()}


def generation_metrics(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    keywords: Sequence[Sequence[Sequence[str]]] | None = None,
) -> dict[str, float]:
    """Exact match, token F1, BLEU, chrF, ROUGE-1/2/L; with ``keywords`` also the mean keyword
    recall and the share of answers with every keyword group, over items that list keywords."""
    n = max(1, len(predictions))
    out = {
        "exact_match": sum(exact_match(p, r) for p, r in zip(predictions, references, strict=True))
        / n,
        "token_f1": sum(token_f1(p, r) for p, r in zip(predictions, references, strict=True)) / n,
        "bleu": bleu(predictions, references),
        "chrf": chrf(predictions, references),
        **rouge(predictions, references),
    }
    if keywords is not None:  # over the items that list keywords
        hits = [keyword_recall(p, k) for p, k in zip(predictions, keywords, strict=True) if k]
        out["keyword_recall"] = sum(hits) / max(1, len(hits))
        out["keyword_all"] = sum(h == 1.0 for h in hits) / max(1, len(hits))
    return out


def perplexity_metrics(nll_sum: float, tokens: int, n_bytes: int) -> dict[str, float]:
    """Token-level perplexity ``exp(total NLL / scored tokens)``, the mean NLL, and bits per
    UTF-8 byte (comparable across tokenizers)."""
    if tokens == 0:
        return {"perplexity": math.nan, "nll": math.nan, "bits_per_byte": math.nan, "tokens": 0}
    return {
        "perplexity": math.exp(nll_sum / tokens),
        "nll": nll_sum / tokens,
        "bits_per_byte": nll_sum / math.log(2) / max(1, n_bytes),
        "tokens": tokens,
    }


def multiple_choice_metrics(
    logliks: Sequence[Sequence[float]], choice_bytes: Sequence[Sequence[int]], gold: Sequence[int]
) -> tuple[dict[str, float], list[int], list[int]]:
    """lm-evaluation-harness ``acc`` (argmax log-likelihood) and ``acc_norm`` (argmax of
    log-likelihood divided by the choice's length in UTF-8 bytes).

    Returns the metrics and each item's predicted index under both rules. Ties go to the
    first choice, as ``numpy.argmax`` does.
    """
    pred: list[int] = []
    pred_norm: list[int] = []
    for ll, nbytes in zip(logliks, choice_bytes, strict=True):
        pred.append(max(range(len(ll)), key=lambda i: (ll[i], -i)))
        norm = [x / max(1, b) for x, b in zip(ll, nbytes, strict=True)]
        pred_norm.append(max(range(len(norm)), key=lambda i: (norm[i], -i)))
    n = max(1, len(gold))
    return (
        {
            "acc": sum(p == g for p, g in zip(pred, gold, strict=True)) / n,
            "acc_norm": sum(p == g for p, g in zip(pred_norm, gold, strict=True)) / n,
        },
        pred,
        pred_norm,
    )


#: What the confusion matrix calls a prediction outside the label set.
OTHER = "(other)"


def classification_metrics(
    gold: Sequence[str],
    predicted: Sequence[str],
    labels: Sequence[str],
    probabilities: Sequence[Sequence[float]] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Accuracy, macro precision/recall/F1, ROC-AUC (with probabilities) and the confusion
    matrix (rows gold, columns predicted; an extra ``(other)`` column when a prediction is
    outside ``labels``). Returns ``(metrics, details)``.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(labels)
    columns = labels + ([OTHER] if any(p not in labels for p in predicted) else [])
    pred = [p if p in labels else OTHER for p in predicted]
    precision, recall, f1, _ = precision_recall_fscore_support(
        gold, pred, labels=labels, average="macro", zero_division=0
    )
    n = max(1, len(gold))
    metrics: dict[str, float] = {
        "accuracy": sum(g == p for g, p in zip(gold, pred, strict=True)) / n,
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
    }
    if probabilities is not None:
        auc = roc_auc_ovr(gold, probabilities, labels)
        if auc is not None:
            metrics["roc_auc"] = auc
    matrix = confusion_matrix(gold, pred, labels=columns)
    details = {
        "labels": columns,
        "confusion_matrix": matrix[: len(labels)].tolist(),
        "support": {lab: int(sum(g == lab for g in gold)) for lab in labels},
    }
    return metrics, details


def roc_auc_ovr(
    gold: Sequence[str], probabilities: Sequence[Sequence[float]], labels: Sequence[str]
) -> float | None:
    """Macro one-vs-rest ROC-AUC over labels with both positive and negative gold items
    (binary: the AUC of the second label's score); None when no label qualifies."""
    from sklearn.metrics import roc_auc_score

    per_label = []
    for j, label in enumerate(labels):
        y = [int(g == label) for g in gold]
        if 0 < sum(y) < len(y):
            per_label.append(float(roc_auc_score(y, [row[j] for row in probabilities])))
    if len(labels) == 2 and per_label:
        return per_label[-1]
    return sum(per_label) / len(per_label) if per_label else None


def retrieval_metrics(
    ranked: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]], ks: Sequence[int]
) -> tuple[dict[str, float], list[int | None]]:
    """hit@k for each k and MRR@max(k) over queries; also each query's first relevant rank.

    ``hit@k``: share of queries with a relevant id among the first ``k``; ``mrr``: mean of
    1/rank of the first relevant id within the first ``max(ks)`` (0 when none).
    """
    top = max(ks)
    ranks: list[int | None] = []
    for ids, rel in zip(ranked, relevant, strict=True):
        wanted = set(rel)
        rank = next((i + 1 for i, x in enumerate(list(ids)[:top]) if x in wanted), None)
        ranks.append(rank)
    n = max(1, len(ranks))
    out = {f"hit@{k}": sum(r is not None and r <= k for r in ranks) / n for k in sorted(ks)}
    out["mrr"] = sum(1.0 / r for r in ranks if r is not None) / n
    return out, ranks


#: Metric names where a lower value is better (the rest: higher is better).
LOWER_IS_BETTER = frozenset(
    {"perplexity", "loss", "nll", "bits_per_byte", "byte_perplexity", "word_perplexity"}
)


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` (``task.metric`` or bare) is an improvement."""
    return metric.rsplit(".", 1)[-1] in LOWER_IS_BETTER
