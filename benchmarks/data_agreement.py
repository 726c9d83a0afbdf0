"""Keep/drop agreement of llmeco's corpus filters with HF datatrove's, on generated pages.

    .venv/bin/python scripts/peer_venv.py datatrove      # once: datatrove + spaCy venv
    .venv/bin/python benchmarks/data_agreement.py [--docs 2000] [--seed 0]

Generates ``--docs`` web-like pages (:mod:`llmeco.data.synthetic_web`), normalises them as
``prepare`` does, and runs every page through each filter on its own, in datatrove (its
peer venv, ``benchmarks/data_peer_datatrove.py``) and here, with both libraries' default
thresholds. Prints one JSON line per filter (documents, agreement, drops on each side, and
every disagreement with both reasons) and writes them to
``benchmarks/results-data-agreement.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from llmeco.data.c4 import C4Config, c4_filter
from llmeco.data.clean import normalize_text
from llmeco.data.fineweb import FineWebConfig, fineweb_quality
from llmeco.data.gopher import (
    GopherQualityConfig,
    GopherRepetitionConfig,
    gopher_quality,
    gopher_repetition,
)
from llmeco.data.synthetic_web import WebCorpus
from llmeco.data.text import split_words

HERE = Path(__file__).resolve().parent
FILTERS = ("gopher_repetition", "gopher_quality", "c4", "fineweb")


def our_decisions(text: str) -> dict[str, str | None]:
    """Each filter's drop reason for ``text`` on its own (None: kept), and C4's kept text."""
    words = split_words(text)
    c4_text, c4_reason, _ = c4_filter(text, C4Config())
    return {
        "gopher_repetition": gopher_repetition(text, words, GopherRepetitionConfig()),
        "gopher_quality": gopher_quality(text, words, GopherQualityConfig()),
        "c4": c4_reason,
        "fineweb": fineweb_quality(text, words, FineWebConfig()),
        "c4_text": c4_text,
    }


def generated_pages(docs: int, seed: int) -> list[dict[str, str]]:
    """``docs`` normalised pages (empty ones skipped: both sides would drop them)."""
    pages = []
    for doc in WebCorpus(seed).documents(docs):
        text = normalize_text(doc["text"])
        if text:
            pages.append({"id": doc["id"], "text": text, "kind": doc["kind"]})
    return pages


def compare(peer_python: Path, docs: int, seed: int) -> list[dict[str, Any]]:
    """Per filter: agreement of keep/drop decisions and the disagreements."""
    pages = generated_pages(docs, seed)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pages))
        subprocess.run(
            [
                str(peer_python),
                str(HERE / "data_peer_datatrove.py"),
                "decisions",
                str(src),
                str(dst),
            ],
            check=True,
        )
        theirs = {row["id"]: row for row in map(json.loads, dst.read_text().splitlines())}
    results = []
    ours = {p["id"]: our_decisions(p["text"]) for p in pages}
    for name in FILTERS:
        disagreements = []
        for page in pages:
            mine, peer = ours[page["id"]][name], theirs[page["id"]][name]
            if (mine is None) != (peer is None):
                disagreements.append(
                    {"id": page["id"], "kind": page["kind"], "ours": mine, "datatrove": peer}
                )
        agree = len(pages) - len(disagreements)
        extra: dict[str, Any] = {}
        if name == "c4":  # C4 also rewrites the pages it keeps: compare the text too
            both = [
                p["id"]
                for p in pages
                if ours[p["id"]]["c4"] is None and theirs[p["id"]]["c4"] is None
            ]
            extra["kept_text_identical"] = sum(
                ours[i]["c4_text"] == theirs[i]["c4_text"] for i in both
            )
            extra["kept_by_both"] = len(both)
        results.append(
            {
                "filter": name,
                "documents": len(pages),
                "agree": agree,
                "agreement": round(agree / len(pages), 4),
                "dropped_ours": sum(ours[p["id"]][name] is not None for p in pages),
                "dropped_datatrove": sum(theirs[p["id"]][name] is not None for p in pages),
                **extra,
                "disagreements": disagreements,
            }
        )
    return results


def main() -> int:
    """Command-line entry."""
    sys.path.insert(0, str(HERE.parent / "scripts"))
    from peer_venv import peer_python

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results-data-agreement.jsonl")
    args = parser.parse_args()
    results = compare(peer_python("datatrove"), args.docs, args.seed)
    lines = [json.dumps(r, ensure_ascii=False) for r in results]
    print("\n".join(lines))
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
