"""Support assistant quality on every handbook, next to LlamaIndex and LangChain.

For each handbook — the tuning handbook (``examples/corpus/handbook.md`` with
``examples/kb-questions``) and each folder of ``examples/handbooks`` (``handbook.json`` names its
documents; ``hr`` is held out and reported separately) — builds (or reuses) its knowledge base
in ``LLMECO_HOME``, serves the model on a local port and asks every question
(``questions.jsonl``, ``unanswerable.jsonl``, two-turn ``conversations.jsonl``) three ways, one
after the other, with the same model, the same packaged MiniLM embedder, the same chunk size
and the same parsed document text:

* ``llmeco``: ``POST /v1/chat/completions`` with ``model: support:<handbook>``;
* ``llamaindex``: a ``VectorStoreIndex`` query engine (chat engine for conversations);
* ``langchain``: a retrieval chain (history-aware for conversations);

the peers running in their own venv (``scripts/peer_venv.py rag-frameworks``,
``benchmarks/support_peers.py``) against the same server. Every reply is scored by the same
code (:mod:`llmeco.apps.support.evaluate`: correct, cited, grounded, hand-off precision /
recall, false hand-off rate, follow-up correct, p50/p95 latency). A peer has no hand-off: an
answer saying it does not know counts as one.

The gate is the shipped default (no per-knowledge-base labels). ``--calibrated`` also runs
llmeco with a gate fitted by ``kb calibrate`` on each handbook's own calibration files, where
it has them (never ``hr``). ``--sample N`` asks the first N questions of each file (a quick
check). ``--record PATH`` writes the held-out figures that
``tests/integration/apps/test_support_heldout.py`` guards.

``--calibrate`` runs no model: it fits the shipped answerability gate on the calibration sets of
every handbook that has them, the held-out one never among them
(:func:`llmeco.apps.answerability.fit_pooled_gate`), and prints it with its leave-one-KB-out
rates and its rates on each of those handbooks' evaluation questions (``--write`` ships it as
``src/llmeco/apps/default_gate.json``). Write it from an empty ``LLMECO_HOME``, as
``tests/integration/apps/test_default_gate.py`` refits it (knowledge bases built in the same
process): on knowledge bases reopened from an earlier run a few questions' word-coverage
signals flip on float-level differences, which moves the fit.

    LLMECO_HOME=/tmp/llmeco-bench .venv/bin/python benchmarks/support.py > result.json
    LLMECO_HOME=/tmp/llmeco-bench .venv/bin/python benchmarks/support.py --sample 5 --peers none
    LLMECO_HOME=$(mktemp -d) .venv/bin/python benchmarks/support.py --calibrate --write
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from llmeco.apps import answerability
from llmeco.apps.conversations import ConversationLog
from llmeco.apps.support import calibration
from llmeco.apps.support.calibration import GateStore
from llmeco.apps.support.desk import SupportDesk
from llmeco.apps.support.evaluate import (
    Item,
    Passage,
    Reply,
    judge,
    load_items,
    refuses,
    run,
    summarise,
    support_asker,
)
from llmeco.engine.async_engine import AsyncEngine
from llmeco.governance.crypto import Cipher
from llmeco.rag.embed import Embedder, packaged_model_dir
from llmeco.rag.evaluate import load_questions, score
from llmeco.rag.kb import KnowledgeBase, open_or_create
from llmeco.rag.parse import expand_paths, read_document
from llmeco.server import build_app
from llmeco.settings import Settings
from llmeco.store import Store

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "examples" / "kb-questions"
HANDBOOKS = ROOT / "examples" / "handbooks"
sys.path.insert(0, str(ROOT / "scripts"))
#: Question sets of the tuning handbook: file names under QUESTIONS (answerable, unanswerable,
#: then the two-turn conversations of the evaluation set).
SETS = {
    "evaluation": ("handbook.jsonl", "unanswerable.jsonl", "conversations.jsonl"),
    "calibration": ("calibration.jsonl", "calibration-unanswerable.jsonl"),
}
PEERS = ("llamaindex", "langchain")
#: Passages every system is given (llmeco shows the model three).
TOP_K = 3
#: Answerable held-out questions the regression test asks (the first of questions.jsonl):
#: enough that one answer flipping moves the share by less than the test's 5 points.
TEST_SAMPLE = 24


@dataclass(frozen=True)
class Handbook:
    """One knowledge base to measure: its documents, question files, calibration files."""

    name: str
    documents: list[Path]
    questions: list[Path]
    held_out: bool
    calibration: tuple[Path, Path] | None


def handbooks() -> list[Handbook]:
    """The tuning handbook, then every folder of ``examples/handbooks`` with a manifest."""
    out = [
        Handbook(
            "handbook",
            [ROOT / "examples" / "corpus" / "handbook.md"],
            [QUESTIONS / n for n in SETS["evaluation"]],
            False,
            (QUESTIONS / SETS["calibration"][0], QUESTIONS / SETS["calibration"][1]),
        )
    ]
    for manifest in sorted(HANDBOOKS.glob("*/handbook.json")):
        folder = manifest.parent
        meta = json.loads(manifest.read_text())
        files = [folder / f"{n}.jsonl" for n in ("questions", "unanswerable", "conversations")]
        cal = (folder / "calibration.jsonl", folder / "calibration-unanswerable.jsonl")
        held = bool(meta.get("held_out"))
        out.append(
            Handbook(
                str(meta.get("name") or folder.name),
                [folder / d for d in meta["documents"]],
                [f for f in files if f.is_file()],
                held,
                cal if not held and all(p.is_file() for p in cal) else None,
            )
        )
    return out


def load(name: str) -> list[dict[str, Any]]:
    """A JSONL question set of the tuning handbook."""
    return [json.loads(x) for x in (QUESTIONS / name).read_text().splitlines() if x.strip()]


def calibrate(store: Store, embedder: Embedder, write: bool) -> dict[str, Any]:
    """Fit the shipped gate on every calibration set (never the held-out handbook's); report
    its leave-one-KB-out rates and its rates on each knowledge base's evaluation questions."""
    books = [b for b in handbooks() if b.calibration is not None and not b.held_out]
    sets: dict[str, tuple[list[answerability.Signals], list[answerability.Signals]]] = {}
    evaluation: dict[str, tuple[list[answerability.Signals], list[answerability.Signals]]] = {}
    files: dict[str, str] = {}
    for book in books:
        assert book.calibration is not None
        kb = build_kb(store, book, embedder)
        # one call for both files, as ``kb calibrate`` makes it: a turn's embeddings are
        # cached, and a vector computed in another batch can differ in the last bits
        a, u = (calibration.read_questions(p) for p in book.calibration)
        signals = calibration.question_signals(kb, embedder, [*a, *u])
        sets[book.name] = (signals[: len(a)], signals[len(a) :])
        evaluation[book.name] = tuple(  # type: ignore[assignment]
            calibration.question_signals(kb, embedder, calibration.read_questions(p))
            for p in book.questions[:2]
        )
        for path in book.calibration:
            # relative to the repository, so the shipped file does not name this machine
            files[str(path.relative_to(ROOT))] = hashlib.sha256(path.read_bytes()).hexdigest()
    gate = answerability.fit_pooled_gate(sets, embed_model=embedder.name, sources={"files": files})
    if write:
        answerability.DEFAULT_GATE.write_text(gate.to_json() + "\n")
    return {
        "gate": json.loads(gate.to_json()),
        "evaluation": {
            name: {
                "answered": round(sum(map(gate.answers, ea)) / len(ea), 3),
                "handoff_unanswerable": round(sum(not gate.answers(x) for x in eu) / len(eu), 3),
            }
            for name, (ea, eu) in evaluation.items()
        },
        "written": str(answerability.DEFAULT_GATE) if write else None,
    }


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_kb(store: Store, book: Handbook, embedder: Embedder) -> KnowledgeBase:
    """The handbook's knowledge base, created or brought up to date."""
    kb = open_or_create(store, book.name, embedder)
    for path, doc in expand_paths(book.documents):
        kb.add_file(path, doc)
    return kb


def sample_items(book: Handbook, n: int) -> list[Item]:
    """The items of each question file (its first ``n`` when ``n`` > 0)."""
    out: list[Item] = []
    for path in book.questions:
        items = load_items(path)
        out += items[:n] if n > 0 else items
    return out


async def run_peer(
    python: Path,
    framework: str,
    book: Handbook,
    items: list[Item],
    base_url: str,
    model: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One peer on one handbook (a subprocess in the peer venv), scored like llmeco."""
    documents = [
        {"name": doc, "text": read_document(path, doc).text}
        for path, doc in expand_paths(book.documents)
    ]
    job = {
        "framework": framework,
        "base_url": base_url,
        "model": model,
        "embed_path": str(packaged_model_dir()),
        "chunk_chars": 800,
        "overlap_chars": 160,
        "top_k": TOP_K,
        "max_tokens": args.max_tokens,
        "concurrency": args.concurrency,
        "documents": documents,
        "items": [{"id": i.id, "kind": i.kind, "queries": list(i.queries)} for i in items],
    }
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        str(python),
        str(ROOT / "benchmarks" / "support_peers.py"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(json.dumps(job).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"{framework} failed: {err.decode()[-3000:]}")
    rows = {r["id"]: r for r in (json.loads(x) for x in out.decode().splitlines() if x.strip())}
    outcomes = []
    for item in items:
        r = rows[item.id]
        passages = [Passage(n, t) for n, t in enumerate(r["passages"], 1)]
        reply = Reply(r["answer"], passages, None, refuses(r["answer"]), r["latency_s"])
        outcomes.append(judge(item, reply))
    scored = summarise(outcomes).to_dict(details=args.details is not None)
    scored["wall_s"] = round(time.perf_counter() - t0, 1)
    return scored


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every selected handbook, every system; the figures as one JSON object."""
    import uvicorn

    settings = Settings()
    store = Store.from_settings(settings)
    embedder = Embedder()
    chosen = [b for b in handbooks() if not args.handbooks or b.name in args.handbooks]
    peers = [] if args.peers == "none" else args.peers.split(",")
    peer_python = None
    if peers:
        from peer_venv import build

        peer_python = build("rag-frameworks", quiet=True)
    kbs = {b.name: build_kb(store, b, embedder) for b in chosen}
    desk = SupportDesk(store, embedder, ConversationLog(store, Cipher.from_settings(settings)))
    engine = AsyncEngine.from_ref(args.model, settings)
    model = engine.model_info.name
    app = build_app(settings, {model: engine}, embedder, support=desk)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    gates = GateStore(store)
    results: dict[str, Any] = {}
    t_all = time.perf_counter()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=900) as client:
            for book in chosen:
                items = sample_items(book, args.sample)
                kb = kbs[book.name]
                qs = [q for p in book.questions for q in load_questions(p)]
                if args.sample > 0:
                    keep = {i.id for i in items}
                    qs = [q for q in qs if q.id in keep]
                retrieval = score(functools.partial(kb.search, k=5), qs).to_dict()
                entry: dict[str, Any] = {
                    "held_out": book.held_out,
                    "retrieval": {k: v for k, v in retrieval.items() if k != "misses"},
                }
                gates.delete(book.name)  # the shipped default gate: no per-KB labels
                ask = support_asker(client, book.name, max_tokens=args.max_tokens)
                t0 = time.perf_counter()
                scored = await run(ask, items, concurrency=args.concurrency)
                entry["llmeco"] = scored.to_dict(details=True)
                entry["llmeco"]["wall_s"] = round(time.perf_counter() - t0, 1)
                if args.record is not None and book.held_out:
                    # the regression test's sample, asked as the test asks it: one at a time
                    # (quantized kernels round differently in other batches)
                    first = [i for i in items if i.kind == "answerable"][:TEST_SAMPLE]
                    sample = await run(ask, first, concurrency=1)
                    entry["test_sample"] = {
                        "questions": len(first),
                        "correct": round(sample.correct, 4),
                        "max_tokens": args.max_tokens,
                        "concurrency": 1,
                    }
                if args.calibrated and book.calibration is not None:
                    gate = calibration.calibrate(kb, embedder, embedder.name, *book.calibration)
                    gates.put(book.name, gate)
                    t0 = time.perf_counter()
                    scored = await run(ask, items, concurrency=args.concurrency)
                    entry["llmeco_calibrated"] = scored.to_dict(details=args.details is not None)
                    entry["llmeco_calibrated"]["wall_s"] = round(time.perf_counter() - t0, 1)
                    gates.delete(book.name)
                for framework in peers:
                    assert peer_python is not None
                    entry[framework] = await run_peer(
                        peer_python, framework, book, items, f"{base}/v1", model, args
                    )
                results[book.name] = entry
                print(f"{book.name}: {json.dumps(brief(entry))}", file=sys.stderr, flush=True)
    finally:
        server.should_exit = True
        await serving
        await engine.shutdown(timeout=1)
        embedder.close()
    return {
        "model": args.model,
        "sample": args.sample,
        "max_tokens": args.max_tokens,
        "concurrency": args.concurrency,
        "top_k": TOP_K,
        "chunk_chars": 800,
        "tuning": {k: v for k, v in results.items() if not v["held_out"]},
        "held_out": {k: v for k, v in results.items() if v["held_out"]},
        "wall_s": round(time.perf_counter() - t_all, 1),
    }


FIGURES = (
    "correct",
    "cited",
    "grounded",
    "handoff_recall",
    "false_handoff_rate",
    "followup_correct",
    "latency_p50_s",
    "latency_p95_s",
)


def brief(entry: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one handbook, per system (progress on stderr)."""
    return {
        s: {k: entry[s][k] for k in FIGURES}
        for s in ("llmeco", "llmeco_calibrated", *PEERS)
        if s in entry
    }


def record(result: dict[str, Any], path: Path) -> None:
    """Write the held-out figures the regression test compares with: the whole set's, and
    ``correct`` on the first :data:`TEST_SAMPLE` answerable questions asked one at a time
    (what the test asks, as it asks it)."""
    rows: dict[str, Any] = {}
    for name, entry in result["held_out"].items():
        rows[name] = {
            "full": {k: entry["llmeco"][k] for k in FIGURES} | {"sample": result["sample"]},
            "test_sample": entry["test_sample"],
        }
    path.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")


def strip_outcomes(result: dict[str, Any], details: Path | None) -> None:
    """Move the per-question outcomes out of ``result`` (into ``details`` JSONL if given)."""
    lines = []
    for group in ("tuning", "held_out"):
        for name, entry in result[group].items():
            for system in ("llmeco", "llmeco_calibrated", *PEERS):
                for o in (entry.get(system) or {}).pop("outcomes", []):
                    lines.append(json.dumps({"handbook": name, "system": system, **o}) + "\n")
    if details is not None:
        details.write_text("".join(lines))


async def main() -> None:
    """Run the handbooks and print the figures (or, with ``--calibrate``, fit the gate)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=60)
    ap.add_argument("--handbooks", type=lambda s: s.split(","), help="names (default: all)")
    ap.add_argument("--sample", type=int, default=0, help="first N questions of each file")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma list, or 'none'")
    ap.add_argument("--calibrated", action="store_true", help="also with kb calibrate gates")
    ap.add_argument("--details", type=Path, help="write per-question outcomes (JSONL) here")
    ap.add_argument("--record", type=Path, help="write the held-out figures (JSON) here")
    ap.add_argument("--calibrate", action="store_true", help="fit the answerability gate")
    ap.add_argument("--write", action="store_true", help="with --calibrate: ship the gate")
    args = ap.parse_args()
    if args.calibrate:
        embedder = Embedder()
        print(json.dumps(calibrate(Store.from_settings(Settings()), embedder, args.write)))
        embedder.close()
        return
    result = await measure(args)
    if args.record is not None:
        record(result, args.record)
    strip_outcomes(result, args.details)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
