"""Corpus preparation throughput and peak memory: llmeco vs HF datatrove, and on Ray.

    .venv/bin/python scripts/peer_venv.py datatrove        # once
    .venv/bin/python benchmarks/data.py [--sizes 100 200] [--peer-mb 20] [--ray-mb 100]

Generates one seeded web-like corpus (:mod:`llmeco.data.synthetic_web`) as 10 MB JSONL
files, so every smaller corpus is a prefix of the larger one, then runs, each as its own
process on the first N MB:

* ``llmeco-filters``: ``llmeco data prepare --corpus`` with the four filters datatrove runs
  (Gopher repetition, Gopher quality, C4, FineWeb) and nothing else;
* ``llmeco-full``: the whole corpus pipeline (language id keeping English, the four filters,
  line dedup in and across documents, exact + MinHash dedup, PII redaction, zstd shards);
* ``datatrove``: its ``LocalPipelineExecutor`` (``--peer-workers``, 1 by default) with
  JsonlReader, the same four filters at their defaults, and JsonlWriter
  (``benchmarks/data_peer_datatrove.py``);
* ``llmeco-full-ray``: the whole pipeline with ``--ray --workers 2`` (a local Ray cluster).

Per run: wall seconds, CPU seconds of the process tree (user + sys), documents/s and MB/s
of input text (wall), MB per CPU-second (the per-core figure), and peak RSS of the process
tree (sampled every 0.1 s). One JSON line per run, written to
``benchmarks/results-data.jsonl``. ``--peer-mb`` bounds datatrove's input, which processes
about 0.1 MB/s on one core: its per-core rate does not depend on the corpus size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from llmeco.data.synthetic_web import WebCorpus

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FILE_MB = 10
FILTERS_ONLY = [
    "language.enabled=false",
    "line_dedup.enabled=false",
    "exact_dedup=false",
    "near_dedup.enabled=false",
    "redact=false",
]


def generate(folder: Path, megabytes: int, seed: int) -> list[dict[str, Any]]:
    """Write ``megabytes`` MB of pages as ``FILE_MB`` MB JSONL files (reused when present)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / f"corpus-{megabytes}-{seed}.json"
    if stamp.exists():
        return list(json.loads(stamp.read_text()))
    files: list[dict[str, Any]] = []
    docs = size = 0
    out = None
    for doc in WebCorpus(seed).documents():
        if out is None:
            path = folder / f"web-{len(files):04d}.jsonl"
            out = path.open("w", encoding="utf-8")
            docs = size = 0
        out.write(json.dumps({"id": doc["id"], "text": doc["text"]}, ensure_ascii=False) + "\n")
        docs += 1
        size += len(doc["text"].encode("utf-8"))
        if size >= FILE_MB * 1_000_000:
            out.close()
            out = None
            files.append({"file": path.name, "documents": docs, "bytes": size})
            if len(files) * FILE_MB >= megabytes:
                break
    stamp.write_text(json.dumps(files))
    return files


def _tree_sample(proc: psutil.Process) -> tuple[int, float]:
    rss, cpu = 0, 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            rss += p.memory_info().rss
            t = p.cpu_times()
            cpu += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return rss, cpu


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; wall time, peak tree RSS and tree CPU seconds."""
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    handle = psutil.Process(proc.pid)
    peak, cpu_seen = 0, 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, cpu_seen
        while not done.is_set():
            try:
                rss, cpu = _tree_sample(handle)
            except psutil.Error:
                break
            peak, cpu_seen = max(peak, rss), max(cpu_seen, cpu)
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    thread.join()
    after = os.times()
    waited = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{output.decode()[-3000:]}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(max(waited, cpu_seen), 2),
        "peak_rss_mb": round(peak / 1e6, 1),
        "output": output.decode(errors="replace")[-2000:],
    }


def _subset(folder: Path, files: list[dict[str, Any]], megabytes: int, tag: str) -> Path:
    chosen = files[: max(1, megabytes // FILE_MB)]
    sub = folder.parent / f"in-{tag}-{megabytes}"
    if sub.exists():
        shutil.rmtree(sub)
    sub.mkdir()
    for f in chosen:
        os.link(folder / f["file"], sub / f["file"])
    return sub


def _row(name: str, mb: int, files: list[dict[str, Any]], m: dict[str, Any]) -> dict[str, Any]:
    chosen = files[: max(1, mb // FILE_MB)]
    docs = sum(f["documents"] for f in chosen)
    size = sum(f["bytes"] for f in chosen) / 1e6
    return {
        "run": name,
        "corpus_mb": round(size, 1),
        "documents": docs,
        "wall_s": m["wall_s"],
        "cpu_s": m["cpu_s"],
        "docs_per_s": round(docs / m["wall_s"], 1),
        "mb_per_s": round(size / m["wall_s"], 3),
        "mb_per_cpu_s": round(size / m["cpu_s"], 3) if m["cpu_s"] else None,
        "peak_rss_mb": m["peak_rss_mb"],
    }


def main() -> int:
    """Command-line entry."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from peer_venv import peer_python

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--peer-mb", type=int, default=20)
    parser.add_argument(
        "--peer-workers", type=int, default=1, help="datatrove's local executor tasks/workers"
    )
    parser.add_argument("--ray-mb", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/llmeco-bench-data"))
    parser.add_argument("--shard-mb", type=float, default=16.0)
    parser.add_argument("--skip", nargs="*", default=[], help="runs to leave out")
    parser.add_argument("--out", type=Path, default=HERE / "results-data.jsonl")
    args = parser.parse_args()
    corpus = args.work / "corpus"
    files = generate(corpus, max(args.sizes), args.seed)
    env = {**os.environ, "LLMECO_THREADS": "1", "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}
    llmeco = [str(Path(sys.executable).with_name("llmeco")), "data", "prepare"]
    runs: list[tuple[str, int, list[str]]] = []
    for mb in args.sizes:
        common = ["--corpus", "--overwrite", "--shard-mb", str(args.shard_mb)]
        sets = [a for s in FILTERS_ONLY for a in ("--set", s)]
        runs.append(("llmeco-filters", mb, [*llmeco, "{in}", "--out", "{out}", *common, *sets]))
        full = [*llmeco, "{in}", "--out", "{out}", *common, "--languages", "en"]
        runs.append(("llmeco-full", mb, full))
    runs.append(
        (
            "llmeco-full-ray",
            args.ray_mb,
            [
                *llmeco,
                "{in}",
                "--out",
                "{out}",
                "--corpus",
                "--overwrite",
                "--shard-mb",
                str(args.shard_mb),
                "--languages",
                "en",
                "--ray",
                "--workers",
                "2",
            ],
        )
    )
    peer = str(peer_python("datatrove"))
    runs.append(
        (
            "datatrove",
            args.peer_mb,
            [
                peer,
                str(HERE / "data_peer_datatrove.py"),
                "pipeline",
                "{in}",
                "{out}",
                "--workers",
                str(args.peer_workers),
                "--logs",
                str(args.work / "dt-logs"),
            ],
        )
    )
    lines = []
    for name, mb, template in runs:
        if name in args.skip:
            continue
        src = _subset(corpus, files, mb, name)
        dst = args.work / f"out-{name}-{mb}"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.rmtree(args.work / "dt-logs", ignore_errors=True)
        cmd = [c.replace("{in}", str(src)).replace("{out}", str(dst)) for c in template]
        m = measure(cmd, env)
        row = _row(name, mb, files, m)
        if name == "datatrove":
            row["kept"] = json.loads(m["output"].strip().splitlines()[-1])["kept"]
        if name.startswith("llmeco"):
            manifest = json.loads((dst / "manifest.json").read_text())
            row["kept"] = manifest["funnel"][-1]["documents"]
            if mb == max(args.sizes) and name == "llmeco-full":
                shutil.copy(dst / "manifest.json", args.work / "manifest-full.json")
        line = json.dumps(row)
        print(line, flush=True)
        lines.append(line)
        shutil.rmtree(dst, ignore_errors=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
