"""PII redaction quality on a hand-labelled set: precision and recall, JSON out.

    .venv/bin/python benchmarks/redaction.py [--data FILE] [--errors] [--check]

The set (``benchmarks/data/redaction_labelled.jsonl``, 260 lines written for this benchmark)
mixes real-looking PII — e-mails, phone numbers in many national formats, payment cards
(Luhn-valid test numbers of every network), IBANs of 30 countries, IPv4/IPv6, US SSNs, UK
NINOs, API keys and passwords — with look-alikes that must be left alone: order, invoice,
tracking, parcel and booking numbers, ISBNs, dates, times, version strings, section numbers,
MAC addresses, Luhn-invalid card numbers, bad-checksum IBANs, never-issued SSNs, prices,
coordinates, hashes and UUIDs. Each line is ``{"text", "entities": [{"type", "value",
"start"}], "split"}``. The ``dev`` split (260 lines) was written first and used while
writing the rules; the ``blind`` split (67 lines, 46 spans) was written afterwards. Its first
scoring, before the fixes it prompted (US ``1-800-…`` numbers, ``Secret key: …`` values,
apostrophes in e-mail local parts), gave precision 0.977 and recall 0.935: that is the fairer
estimate of quality on unseen text; the figures printed now include those fixes.

Matching is span-level and strict: a prediction counts only if its type, start and end are
exactly those of a labelled entity (IPv4 and IPv6 are both type ``IP``). Precision = exact
matches / predicted spans, recall = exact matches / labelled spans.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from llmeco.governance.redact import find

DATA = Path(__file__).parent / "data" / "redaction_labelled.jsonl"
TYPE_OF = {"IPV4": "IP", "IPV6": "IP"}
TARGET_RECALL = 0.95
TARGET_PRECISION = 0.90


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision, recall and F1 of the redactor over labelled rows, per type and overall."""
    tp: Counter[str] = Counter()
    gold_n: Counter[str] = Counter()
    pred_n: Counter[str] = Counter()
    false_pos: list[dict[str, str]] = []
    false_neg: list[dict[str, str]] = []
    start = time.perf_counter()
    predictions = [find(row["text"]) for row in rows]
    seconds = time.perf_counter() - start
    for row, spans in zip(rows, predictions, strict=True):
        gold = {(e["start"], e["start"] + len(e["value"]), e["type"]) for e in row["entities"]}
        pred = {(s.start, s.end, TYPE_OF.get(s.kind, s.kind)) for s in spans}
        for _, _, kind in gold:
            gold_n[kind] += 1
        for _, _, kind in pred:
            pred_n[kind] += 1
        for item in gold & pred:
            tp[item[2]] += 1
        text = row["text"]
        false_pos += [{"type": k, "value": text[a:b], "text": text} for a, b, k in pred - gold]
        false_neg += [{"type": k, "value": text[a:b], "text": text} for a, b, k in gold - pred]
    per_type = {
        kind: {
            "labelled": gold_n[kind],
            "predicted": pred_n[kind],
            "correct": tp[kind],
            "precision": _ratio(tp[kind], pred_n[kind]),
            "recall": _ratio(tp[kind], gold_n[kind]),
        }
        for kind in sorted(set(gold_n) | set(pred_n))
    }
    total_tp, total_gold, total_pred = sum(tp.values()), sum(gold_n.values()), sum(pred_n.values())
    precision, recall = _ratio(total_tp, total_pred), _ratio(total_tp, total_gold)
    return {
        "lines": len(rows),
        "lines_with_pii": sum(bool(r["entities"]) for r in rows),
        "labelled": total_gold,
        "predicted": total_pred,
        "correct": total_tp,
        "precision": precision,
        "recall": recall,
        "f1": round(2 * precision * recall / (precision + recall), 4) if total_tp else 0.0,
        "lines_per_second": round(len(rows) / seconds, 1) if seconds else None,
        "per_type": per_type,
        "false_positives": false_pos,
        "false_negatives": false_neg,
    }


def evaluate(path: Path = DATA) -> dict[str, Any]:
    """Score the whole set and each split (see the module doc)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    report = score(rows)
    splits = sorted({r.get("split", "dev") for r in rows})
    by_split = {
        name: {
            k: v
            for k, v in score([r for r in rows if r.get("split", "dev") == name]).items()
            if k not in ("per_type", "false_positives", "false_negatives")
        }
        for name in splits
    }
    meets = report["recall"] >= TARGET_RECALL and report["precision"] >= TARGET_PRECISION
    return {
        "benchmark": "redaction",
        "dataset": str(path.relative_to(Path(__file__).parent.parent)),
        "matching": "exact span (start, end) and type",
        **report,
        "splits": by_split,
        "targets": {"precision": TARGET_PRECISION, "recall": TARGET_RECALL},
        "meets_targets": meets,
    }


def main() -> int:
    """Print the JSON report; with --check exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--errors", action="store_true", help="Print every miss in full.")
    parser.add_argument("--check", action="store_true", help="Exit 1 below the targets.")
    args = parser.parse_args()
    report = evaluate(args.data)
    if not args.errors:
        for key in ("false_positives", "false_negatives"):
            report[key] = [f"{e['type']}: {e['value']}" for e in report[key]]
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if report["meets_targets"] or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
