"""Runs inside the datatrove peer venv (``python scripts/peer_venv.py datatrove``); never
imports llmeco.

    PEER_PY benchmarks/data_peer_datatrove.py decisions IN.jsonl OUT.jsonl
        each document through each filter on its own: {"id", "<filter>": reason or null}
    PEER_PY benchmarks/data_peer_datatrove.py pipeline IN_DIR OUT_DIR --workers N
        datatrove's LocalPipelineExecutor: JSONL reader, Gopher repetition, Gopher quality,
        C4, FineWeb, JSONL writer; prints one JSON line with the time and documents kept
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _filters() -> dict[str, object]:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return {
        "gopher_repetition": GopherRepetitionFilter(),
        "gopher_quality": GopherQualityFilter(),
        "c4": C4QualityFilter(),
        "fineweb": FineWebQualityFilter(),
    }


def decisions(src: Path, dst: Path) -> None:
    """Every document through every filter independently (a fresh Document each time)."""
    from datatrove.data import Document

    filters = _filters()
    with src.open() as fin, dst.open("w") as fout:
        for line in fin:
            row = json.loads(line)
            out: dict[str, object] = {"id": row["id"]}
            for name, flt in filters.items():
                doc = Document(text=row["text"], id=row["id"])
                verdict = flt.filter(doc)  # type: ignore[attr-defined]
                if isinstance(verdict, tuple):
                    out[name] = verdict[1] if not verdict[0] else None
                else:
                    out[name] = None if verdict else "dropped"
                if name == "c4" and out[name] is None:
                    out["c4_text"] = doc.text
            fout.write(json.dumps(out, ensure_ascii=False) + "\n")


def pipeline(src: Path, dst: Path, workers: int, logs: Path) -> None:
    """The four filters in datatrove's own executor over ``src``'s JSONL files."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    files = sorted(p.name for p in src.iterdir() if p.name.endswith(".jsonl"))
    steps = [
        JsonlReader(str(src), glob_pattern="*.jsonl", id_key="id", text_key="text"),
        *_filters().values(),
        JsonlWriter(str(dst), compression=None),
    ]
    executor = LocalPipelineExecutor(
        pipeline=steps, tasks=len(files), workers=workers, logging_dir=str(logs)
    )
    start = time.perf_counter()
    executor.run()
    elapsed = time.perf_counter() - start
    kept = sum(1 for p in dst.glob("*.jsonl") for _ in p.open())
    print(json.dumps({"seconds": elapsed, "kept": kept}))


def main() -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["decisions", "pipeline"])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--logs", type=Path, default=Path("/tmp/datatrove-logs"))
    args = parser.parse_args()
    if args.mode == "decisions":
        decisions(args.src, args.dst)
    else:
        pipeline(args.src, args.dst, args.workers, args.logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
