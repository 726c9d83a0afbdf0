"""Knowledge-base ingestion throughput and retrieval latency at 100k chunks.

    python benchmarks/rag.py --chunks 100000 --queries 300 --real-sample 1000 \
        --out benchmarks/results-rag.jsonl

1. **Ingestion, real model.** ``--real-sample`` chunks' worth of synthetic support articles go
   through the whole path (parse → chunk → embed with the packaged all-MiniLM-L6-v2 → one
   transaction per document) into a fresh KB: documents/s, chunks/s, and the share of time
   spent embedding. Re-adding them measures the unchanged-file path.
2. **A 100k-chunk KB.** Built through the same ``KnowledgeBase.add_text`` path, but with
   ``--bulk-embedder hash`` (default) each chunk's vector is a hashed bag-of-words vector of
   the same shape and dtype (384 float32, unit length) instead of a MiniLM embedding: on two
   CPU cores MiniLM embeds ~20-60 chunks/s, i.e. 30-80 minutes for 100k. Search cost does not
   depend on the vector values (a full matrix-vector product and a top-k selection). With
   ``--bulk-embedder minilm`` every chunk is embedded for real (cached in the store by content
   hash, so a second run reuses the vectors). The KB is kept in ``--home`` and reused unless
   ``--rebuild``.
3. **Retrieval latency.** ``KnowledgeBase.search(query, k=5)`` end to end — the query embedded
   by the real MiniLM, BM25 over FTS5, vector top-50, reciprocal rank fusion, hits read back
   from the store — for ``--queries`` distinct questions after a warm-up; p50/p90/p99 and a
   per-stage breakdown. The machine's 1-minute load average is recorded with each run, and
   the CPU time each search used (all threads of this process): on a shared machine
   wall-clock latency includes waiting for cores that other processes hold.

One JSON object per line on stdout (and appended to ``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmeco.rag.embed import Embedder
from llmeco.rag.index import fts_search
from llmeco.rag.kb import KnowledgeBase, default_embedder
from llmeco.settings import Settings
from llmeco.store import Store

PRODUCTS = [
    f"{a} {b}"
    for a in ("Harbour", "Ridge", "Coast", "Haul", "Metro", "Summit", "Delta", "Orbit", "Vista")
    for b in ("One", "Two", "Pro", "Lite", "Max", "Cargo", "Trail", "City", "Sport", "Mini")
]
PARTS = (
    "battery pack",
    "charger",
    "rear hub motor",
    "mid-drive motor",
    "torque sensor",
    "display",
    "brake caliper",
    "brake lever",
    "disc rotor",
    "chain",
    "belt",
    "cassette",
    "derailleur",
    "shifter",
    "front light",
    "rear light",
    "kickstand",
    "mudguard",
    "rear rack",
    "saddle",
    "seat post",
    "handlebar",
    "stem",
    "headset",
    "fork",
    "tyre",
    "inner tube",
    "spoke",
    "rim",
    "pedal",
    "crank arm",
    "bottom bracket",
    "controller",
    "wiring harness",
    "charging port",
    "key lock",
    "bell",
    "phone mount",
    "child seat",
    "pannier",
)
ACTIONS = (
    "replace",
    "adjust",
    "clean",
    "tighten",
    "inspect",
    "lubricate",
    "recalibrate",
    "reset",
    "update",
    "remove",
    "install",
    "charge",
    "store",
    "register",
    "return",
    "order",
)
SYMPTOMS = (
    "makes a clicking noise",
    "does not turn on",
    "shows error E{n}",
    "loses power on hills",
    "drains faster than expected",
    "feels loose",
    "squeaks when braking",
    "stops assisting above {n} km/h",
    "gets warm while charging",
    "rattles on cobblestones",
    "blinks red {m} times",
    "will not pair with the app",
)
TEMPLATES = (
    "To {action} the {part} on the {product}, switch the bicycle off and remove the battery first.",
    "If the {part} {symptom}, check the connections and try again after {m} minutes.",
    "The {product} ships with a {part} rated for {n} thousand kilometres of normal use.",
    "Most owners {action} the {part} every {m} months, or sooner in wet weather.",
    "A replacement {part} for the {product} costs {n} euros and is in stock at partner shops.",
    "Our workshop can {action} the {part} in about {m} hours while you wait.",
    "Use a torque wrench set to {n} newton metres when you {action} the {part}.",
    "Warranty covers the {part} for {m} years unless it was damaged in an accident.",
    "When the {part} {symptom}, the display records a fault code you can read in the app.",
    "Riders of the {product} report that the {part} lasts longer with regular cleaning.",
    "Never {action} the {part} while the charger is connected.",
    "The {part} of the {product} weighs {n} grams and is made of recycled aluminium.",
    "Send a photo of the {part} through the support chat if it {symptom}.",
    "Software version {m}.{n} changes how the {part} responds on the {product}.",
    "Customers in cold regions should {action} the {part} before winter starts.",
    "Order the {part} for the {product} under part number {code}.",
    "Kit {code} contains the {part} and the bolts needed to {action} it.",
)
QUESTIONS = (
    "How do I {action} the {part} on my {product}?",
    "My {part} {symptom}, what should I do?",
    "How much does a new {part} for the {product} cost?",
    "Is the {part} covered by the warranty?",
    "How often should I {action} the {part}?",
    "Why does the {part} of my {product} {symptom_bare}?",
    "Can the workshop {action} my {part} while I wait?",
    "What torque should I use on the {part}?",
)
SECTIONS = (
    "Overview",
    "Charging",
    "Maintenance",
    "Troubleshooting",
    "Warranty",
    "Spare parts",
    "Safety",
    "Software",
)


def _fill(template: str, rng: random.Random, topic: tuple[str, list[str]] | None = None) -> str:
    """A template with its slots filled; on-topic product/part most of the time if given."""
    symptom = rng.choice(SYMPTOMS).format(n=rng.randint(10, 99), m=rng.randint(2, 6))
    product = rng.choice(PRODUCTS)
    part = rng.choice(PARTS)
    if topic is not None:
        product = topic[0] if rng.random() < 0.85 else product
        part = rng.choice(topic[1]) if rng.random() < 0.8 else part
    return template.format(
        action=rng.choice(ACTIONS),
        part=part,
        product=product,
        symptom=symptom,
        symptom_bare=re.sub(r"^(does not|will not)", "not", symptom).removesuffix("s"),
        n=rng.randint(2, 900),
        m=rng.randint(1, 12),
        code=f"LC-{rng.randint(1000, 99999)}",
    )


def synthetic_article(i: int, rng: random.Random, sections: int = 6) -> tuple[str, str]:
    """(name, markdown) of one support article about one product and a few of its parts.

    Like real help-centre articles, each stays on its topic: most sentences name the
    article's product and parts, some mention others, and part numbers are article-specific.
    """
    topic = (rng.choice(PRODUCTS), rng.sample(PARTS, 2))
    parts = [f"# {topic[0]}: {topic[1][0]} guide {i}\n"]
    for title in rng.sample(SECTIONS, sections):
        parts.append(f"## {title}\n")
        for _ in range(rng.randint(2, 3)):
            sentences = (_fill(rng.choice(TEMPLATES), rng, topic) for _ in range(4))
            parts.append(" ".join(sentences) + "\n")
    return f"article-{i:06d}.md", "\n".join(parts)


class HashEmbedder:
    """Hashed bag-of-words vectors with MiniLM's shape: 384 float32 dims, unit length.

    Named like the packaged model so the KB accepts it; only for building the large KB fast.
    """

    def __init__(self, name: str, dimensions: int) -> None:
        self.name = name
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dimensions] += 1.0 if h & 1 << 31 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm:
                out[row] /= norm
        return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(_pct(values, 0.50) * 1e3, 2),
        "p90": round(_pct(values, 0.90) * 1e3, 2),
        "p99": round(_pct(values, 0.99) * 1e3, 2),
        "mean": round(statistics.fmean(values) * 1e3, 2),
    }


def ingest(kb: KnowledgeBase, target_chunks: int, seed: int, label: str) -> dict[str, Any]:
    """Add synthetic articles until the KB holds ``target_chunks``; time it."""
    rng = random.Random(seed)
    docs = chunks = embedded = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    last = start
    while chunks < target_chunks:
        name, text = synthetic_article(docs, rng)
        result = kb.add_text(name, text)
        docs += 1
        chunks += result.chunks
        embedded += result.embedded
        if time.perf_counter() - last > 10:
            last = time.perf_counter()
            rate = chunks / (last - start)
            print(f"# {label}: {chunks}/{target_chunks} chunks, {rate:.0f}/s", flush=True)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    return {
        "cpu_seconds": round(cpu, 2),
        "chunks_per_cpu_s": round(chunks / cpu, 1),
        "documents": docs,
        "chunks": chunks,
        "embedded": embedded,
        "seconds": round(elapsed, 2),
        "docs_per_s": round(docs / elapsed, 2),
        "chunks_per_s": round(chunks / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--real-sample", type=int, default=1000, help="chunks for stage 1")
    parser.add_argument("--bulk-embedder", choices=("hash", "minilm"), default="hash")
    parser.add_argument("--home", type=Path, default=Path("/tmp/llmeco-rag-bench"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    settings = Settings(home=args.home)
    store = Store.from_settings(settings)
    minilm = default_embedder()
    assert isinstance(minilm, Embedder)
    minilm.embed(["warm-up"])
    records: list[dict[str, Any]] = []
    base = {
        "machine": platform.processor() or platform.machine(),
        "cpus": torch.get_num_threads(),
        "store": "sqlite",
    }

    # 1. ingestion with the real model, fresh KB (cache emptied for its texts by a new seed)
    if args.real_sample:
        name = f"bench-real-{int(time.time())}"
        kb = KnowledgeBase.create(store, name, minilm)
        seed = int(time.time())
        stats = ingest(kb, args.real_sample, seed=seed, label="real ingest")
        start = time.perf_counter()
        rng = random.Random(seed)
        for i in range(stats["documents"]):
            doc, text = synthetic_article(i, rng)
            assert kb.add_text(doc, text).status == "unchanged"
        unchanged = time.perf_counter() - start
        kb.drop()
        records.append(
            {
                **base,
                "stage": "ingest",
                "embedder": minilm.name,
                **stats,
                "unchanged_readd_docs_per_s": round(stats["documents"] / unchanged, 1),
                "loadavg_1m": round(os.getloadavg()[0], 2),
            }
        )
        print(json.dumps(records[-1]), flush=True)

    # 2. the large KB
    bulk_name = f"bench-{args.chunks}-{args.bulk_embedder}"
    bulk = HashEmbedder(minilm.name, minilm.dimensions) if args.bulk_embedder == "hash" else minilm
    try:
        kb = KnowledgeBase.open(store, bulk_name, bulk)
        if args.rebuild:
            kb.drop()
            raise LookupError
        reused = True
    except Exception:
        kb = KnowledgeBase.create(store, bulk_name, bulk)
        reused = False
    have = sum(d.chunks for d in kb.documents())
    if have < args.chunks:
        stats = ingest(kb, args.chunks, seed=12345, label="bulk ingest")
        records.append({**base, "stage": "bulk-ingest", "embedder": args.bulk_embedder, **stats})
        print(json.dumps(records[-1]), flush=True)
    chunks = sum(d.chunks for d in kb.documents())

    # 3. latency: the same KB object, searched with MiniLM query vectors
    kb._embedder = minilm  # query side is always the real model
    start = time.perf_counter()
    kb.search("warm up the index", args.k)  # loads the vector matrix
    load_s = time.perf_counter() - start
    rng = random.Random(7)
    queries = list(dict.fromkeys(_fill(rng.choice(QUESTIONS), rng) for _ in range(args.queries)))
    for q in queries[:10]:
        kb.search(q, args.k)
    total: list[float] = []
    cpu: list[float] = []
    unranked = 0
    embed_t: list[float] = []
    fts_t: list[float] = []
    vec_t: list[float] = []
    assert kb._index is not None
    for q in queries:
        c0, t0 = time.process_time(), time.perf_counter()
        hits = kb.search(q, args.k)
        total.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert hits
        t0 = time.perf_counter()
        vector = minilm.embed_query([q])[0]
        embed_t.append(time.perf_counter() - t0)
        with store.session() as s:
            t0 = time.perf_counter()
            unranked += not fts_search(s, kb.id, q, 50, term_df=kb._index.term_df).ranked
            fts_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        kb._index.search(vector, 50)
        vec_t.append(time.perf_counter() - t0)
    records.append(
        {
            **base,
            "stage": "search",
            "chunks": chunks,
            "bulk_embedder": args.bulk_embedder,
            "kb_reused": reused,
            "queries": len(queries),
            "k": args.k,
            "index_load_s": round(load_s, 2),
            "latency_ms": _ms(total),
            "cpu_ms_per_query": _ms(cpu),
            "query_embed_ms": _ms(embed_t),
            "bm25_fts5_ms": _ms(fts_t),
            "vector_top50_ms": _ms(vec_t),
            "keyword_all_terms_common_share": round(unranked / len(queries), 3),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "target": {"p50_ms": 30, "p99_ms": 100},
            "met": _pct(total, 0.5) < 0.030 and _pct(total, 0.99) < 0.100,
        }
    )
    print(json.dumps(records[-1]), flush=True)
    if args.out:
        with args.out.open("a") as f:
            for record in records:
                f.write(json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}) + "\n")


if __name__ == "__main__":
    main()
