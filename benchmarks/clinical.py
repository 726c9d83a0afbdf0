"""Clinical-note analysis: de-identification recall, medication field F1, summary ROUGE-L.

    .venv/bin/python benchmarks/clinical.py [--llm-notes 48] [--model default] [--no-llm]

On the shipped synthetic labelled notes (``plugins/llmeco-clinical/data/notes.jsonl``), with
baselines in the same run:

* **De-identification** (every note): the share of gold identifier spans entirely removed,
  overall and per kind, by the governance redactor alone (``builtin``: e-mails, phones, …)
  and with the clinical rules (``clinical``: the app's de-identification); ``precision`` is
  the share of removed spans that overlap a gold identifier.
* **Extraction** (run on the de-identified note, as the app does): micro F1 of medication
  names, (name, dose) and (name, frequency) pairs against the gold, and of problems and
  allergies, for ``rules`` (lexicon + patterns, every note), ``llm`` (the model under the
  JSON-schema grammar) and ``combined`` (rules + the model's grounded items), the last two on
  the first ``--llm-notes`` notes; the rules are scored on that subset too. Also the share
  of notes whose interaction flags equal the flags of the gold medication list.
* **Summary**: ROUGE-L F1 against each note's reference summary for the model (``llm``), the
  template written from the combined extraction, and the lead-3-sentences baseline.

One JSON object on stdout. The model part costs two generations per note (up to
``--max-tokens`` + 120 tokens), ``--concurrency`` notes at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from llmeco_clinical import deid, extract, interactions, lexicon, summary

ROOT = Path(__file__).resolve().parents[1]
NOTES = ROOT / "plugins" / "llmeco-clinical" / "data" / "notes.jsonl"


def covered(gold: dict[str, Any], spans: list[deid.PhiSpan]) -> bool:
    """Whether every non-space character of the gold span lies inside a detected span."""
    text = gold["text"]
    for offset, ch in enumerate(text):
        if ch.isspace():
            continue
        pos = gold["start"] + offset
        if not any(s.start <= pos < s.end for s in spans):
            return False
    return True


def deid_scores(notes: list[dict[str, Any]], clinical: bool) -> dict[str, Any]:
    """Recall (overall, per kind) and precision of one de-identifier over ``notes``."""
    hit: Counter[str] = Counter()
    total: Counter[str] = Counter()
    found = overlapping = 0
    for note in notes:
        spans = deid.find(note["text"], clinical=clinical)
        for g in note["phi"]:
            total[g["kind"]] += 1
            hit[g["kind"]] += covered(g, spans)
        found += len(spans)
        overlapping += sum(
            any(s.start < g["end"] and g["start"] < s.end for g in note["phi"]) for s in spans
        )
    return {
        "recall": round(sum(hit.values()) / sum(total.values()), 4),
        "recall_by_kind": {k: round(hit[k] / total[k], 4) for k in sorted(total)},
        "precision": round(overlapping / found, 4) if found else None,
        "gold_spans": sum(total.values()),
    }


class F1:
    """Micro precision/recall/F1 over sets of items."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def add(self, predicted: set[Any], gold: set[Any]) -> None:
        """Count one note."""
        self.tp += len(predicted & gold)
        self.fp += len(predicted - gold)
        self.fn += len(gold - predicted)

    def result(self) -> dict[str, float]:
        """Precision, recall and F1."""
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}


def score_extraction(
    pairs: list[tuple[extract.Extraction, dict[str, Any]]], lex: lexicon.Lexicon
) -> dict[str, Any]:
    """Field F1s of extractions against their notes' gold."""
    f: dict[str, F1] = defaultdict(F1)
    flags_equal = 0
    for got, note in pairs:
        gold_meds = note["medications"]
        names = {lex.generic(m.name) for m in got.medications}
        f["medication_name"].add(names, {m["name"] for m in gold_meds})
        f["medication_dose"].add(
            {
                (lex.generic(m.name), lexicon.normalise_dose(m.dose))
                for m in got.medications
                if m.dose
            },
            {(m["name"], m["dose"]) for m in gold_meds},
        )
        f["medication_frequency"].add(
            {(lex.generic(m.name), m.frequency) for m in got.medications if m.frequency},
            {(m["name"], m["frequency"]) for m in gold_meds},
        )
        f["problems"].add(set(got.problems), {x.lower() for x in note["problems"]})
        f["allergies"].add(set(got.allergies), set(note["allergies"]))
        mine = {f.drugs for f in interactions.check(sorted(names), lex)}
        gold = {f.drugs for f in interactions.check(sorted(m["name"] for m in gold_meds), lex)}
        flags_equal += mine == gold
    out: dict[str, Any] = {k: v.result() for k, v in f.items()}
    field_f1 = [
        out[k]["f1"] for k in ("medication_name", "medication_dose", "medication_frequency")
    ]
    out["medication_field_f1_mean"] = round(statistics.fmean(field_f1), 4)
    out["interaction_flags_match_gold"] = round(flags_equal / len(pairs), 4)
    out["notes"] = len(pairs)
    return out


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F1."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return round(
        statistics.fmean(
            scorer.score(ref, pred)["rougeL"].fmeasure
            for pred, ref in zip(predictions, references, strict=True)
        ),
        4,
    )


async def run_llm(
    notes: list[dict[str, Any]], model: str, max_tokens: int, concurrency: int
) -> tuple[list[extract.Extraction], list[str], dict[str, Any]]:
    """The model's extraction and summary of each (de-identified) note, ``concurrency`` notes
    at a time (the engine batches them). An extraction cut off by ``max_tokens`` counts as
    empty (and is counted)."""
    from llmeco.apps.run import stream_text
    from llmeco.engine.async_engine import AsyncEngine
    from llmeco.errors import InvalidRequest
    from llmeco.settings import Settings

    engine = AsyncEngine.from_ref(model, Settings())
    tokens = 0
    cut = 0

    async def text(spec: Any) -> str:
        nonlocal tokens
        parts = [piece async for piece in stream_text(engine, spec)]
        out = "".join(parts)
        tokens += len(engine.encode(out))
        return out

    async def one(note: dict[str, Any]) -> tuple[extract.Extraction, str, float]:
        nonlocal cut
        redacted, _ = deid.deidentify(note["text"])
        spec = extract.extraction_spec(redacted, max_tokens)
        start = time.perf_counter()
        raw, written = await asyncio.gather(text(spec), text(summary.summary_spec(redacted, 120)))
        seconds = time.perf_counter() - start
        try:
            got = spec.parse(raw)
        except InvalidRequest:
            cut += 1
            got = extract.Extraction()
        return got, " ".join(written.split()), seconds

    results: list[tuple[extract.Extraction, str, float]] = []
    start = time.perf_counter()
    try:
        for i in range(0, len(notes), concurrency):
            results += await asyncio.gather(*(one(n) for n in notes[i : i + concurrency]))
    finally:
        await engine.shutdown(timeout=5)
    wall = time.perf_counter() - start
    timing = {
        "model": model,
        "notes": len(notes),
        "concurrency": concurrency,
        "seconds_total": round(wall, 1),
        "seconds_per_note_p50": round(statistics.median(r[2] for r in results), 3),
        "generated_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1),
        "extractions_cut_by_max_tokens": cut,
        "example_summary": results[0][1] if results else "",
    }
    return [r[0] for r in results], [r[1] for r in results], timing


def main() -> None:
    """Run the evaluation and print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm-notes", type=int, default=48, help="notes the model runs on")
    ap.add_argument("--model", default="default")
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--concurrency", type=int, default=8, help="notes generated at once")
    ap.add_argument("--no-llm", action="store_true")
    args = ap.parse_args()

    notes = [json.loads(line) for line in NOTES.read_text(encoding="utf-8").splitlines() if line]
    lex = lexicon.load()
    start = time.perf_counter()
    out: dict[str, Any] = {
        "benchmark": "clinical",
        "notes": len(notes),
        "deidentification": {
            "builtin": deid_scores(notes, clinical=False),
            "clinical": deid_scores(notes, clinical=True),
        },
    }
    redacted = [deid.deidentify(n["text"])[0] for n in notes]
    rules = [extract.extract_rules(r, lex) for r in redacted]
    out["extraction"] = {
        "rules_all_notes": score_extraction(list(zip(rules, notes, strict=True)), lex)
    }
    templates = [
        summary.template_summary(r, interactions.check([m.name for m in r.medications], lex))
        for r in rules
    ]
    refs = [n["reference_summary"] for n in notes]
    out["summary_rouge_l"] = {
        "template_rules_all_notes": rouge_l(templates, refs),
        "lead3_baseline_all_notes": rouge_l([summary.lead_sentences(r) for r in redacted], refs),
    }
    out["deterministic_s"] = round(time.perf_counter() - start, 3)
    if not args.no_llm and args.llm_notes > 0:
        subset = notes[: args.llm_notes]
        llm, texts, timing = asyncio.run(
            run_llm(subset, args.model, args.max_tokens, args.concurrency)
        )
        sub_redacted = redacted[: len(subset)]
        combined = [
            extract.combine(r, m, text, lex)
            for r, m, text in zip(rules, llm, sub_redacted, strict=False)
        ]
        pairs = list(zip(rules, subset, strict=False))
        out["extraction"].update(
            {
                "rules": score_extraction(pairs, lex),
                "llm": score_extraction(list(zip(llm, subset, strict=True)), lex),
                "combined": score_extraction(list(zip(combined, subset, strict=True)), lex),
            }
        )
        sub_refs = refs[: len(subset)]
        comb_templates = [
            summary.template_summary(c, interactions.check([m.name for m in c.medications], lex))
            for c in combined
        ]
        out["summary_rouge_l"].update(
            {
                "llm": rouge_l(texts, sub_refs),
                "template_combined": rouge_l(comb_templates, sub_refs),
                "lead3_baseline": rouge_l(
                    [summary.lead_sentences(r) for r in sub_redacted], sub_refs
                ),
                "notes": len(subset),
            }
        )
        out["llm"] = timing
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
