"""Corpus preparation in shards: the map and reduce stages behind ``prepare --config``.

Every stage is a plain function of a JSON-able job that reads and writes files under the
work folder, so the single-process driver and the Ray driver (:mod:`llmeco.data.corpus_run`)
run exactly the same code and produce the same bytes. Documents are numbered in input order
(``i``); "first" always means the lowest number, never the order in which workers finish.

* ``split``   (driver, streaming): inputs → ``in-K.jsonl`` shards of about ``shard_mb`` MB.
* ``filter``  (map, per shard):    per-document steps (:func:`~llmeco.data.steps.process_document`);
  writes the survivors and their line hashes, partitioned into buckets by hash.
* ``lines``   (reduce, per bucket): a line hash found in ``min_docs`` documents is removed
  from all but the first.
* ``keys``    (map, per shard):    drops those lines, then writes each document's exact
  hash and MinHash band keys, partitioned the same way.
* ``dups``    (reduce, per bucket): documents sharing an exact hash or a band key → edges
  to the first of them.
* ``resolve`` (driver): union-find over the edges only (duplicates, not the corpus).
* ``write``   (map, per shard):    redact, split, write ``train-K.jsonl.zst`` /
  ``validation-K.jsonl.zst``.

A stage skips a shard whose ``.done`` file records the same input key (the hash of its
input shard, the config and the upstream results), which is what makes a run resumable.
Memory is bounded by one shard (and one bucket, which holds about one shard's hashes).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from llmeco.data.c4 import LineDrops
from llmeco.data.minhash import band_keys, band_params
from llmeco.data.readers import read_file, supported_suffixes
from llmeco.data.shards import digest, file_sha256, iter_jsonl, read_json, write_json, write_jsonl
from llmeco.data.split import is_validation
from llmeco.data.steps import CorpusConfig, StepStats, dedup_units, process_document
from llmeco.errors import ConfigError, NotFound

#: Upper bounds of the document-length histogram (characters); the last bin is open.
LENGTH_BINS = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
_PAIR = np.dtype([("key", "<u8"), ("i", "<i8")])
_KEY = np.dtype([("kind", "<i4"), ("key", "<u8"), ("i", "<i8")])
_WS = re.compile(r"\s+")


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _histogram(lengths: list[int]) -> list[int]:
    counts: list[int] = np.bincount(
        np.searchsorted(LENGTH_BINS, lengths, side="right"), minlength=len(LENGTH_BINS) + 1
    ).tolist()
    return counts


def expand_corpus_inputs(inputs: list[Path]) -> list[Path]:
    """Files named directly plus readable files under folders (``.jsonl.zst`` included),
    sorted, hidden files skipped.

    Raises:
        NotFound: an input does not exist.
    """
    files: list[Path] = []
    suffixes = supported_suffixes()
    for item in inputs:
        if not item.exists():
            raise NotFound(f"{item}: no such file or folder")
        if item.is_file():
            files.append(item)
            continue
        for path in sorted(item.rglob("*")):
            readable = path.name.endswith(".jsonl.zst") or path.suffix.lower() in suffixes
            if path.is_file() and not path.name.startswith(".") and readable:
                files.append(path)
    return files


def _documents(path: Path) -> Iterator[tuple[str, str]]:
    """(id, text) of every text record of a file; JSONL is streamed."""
    if path.name.endswith((".jsonl", ".jsonl.zst")):
        for n, obj in enumerate(iter_jsonl(path), start=1):
            text = obj.get("text", obj.get("content")) if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise ConfigError(f"{path}:{n}: a corpus record needs a 'text' string")
            doc_id = obj.get("id")
            yield (str(doc_id) if doc_id is not None else f"{path.name}:{n}"), text
        return
    for n, record in enumerate(read_file(path), start=1):
        if "text" in record:
            yield f"{path.name}:{n}", record["text"]


def split_inputs(files: list[Path], work: Path, shard_mb: float) -> list[dict[str, Any]]:
    """Stream the inputs into numbered shards of about ``shard_mb`` MB of text; a shard
    whose bytes are unchanged since a previous run keeps its file. Returns the shards
    (``index``, ``first`` document number, ``count``, ``sha256``)."""
    limit = max(1, int(shard_mb * 1_000_000))
    shards: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    size = 0
    number = 0

    def flush() -> None:
        nonlocal rows, size
        index = len(shards)
        path = work / f"in-{index:05d}.jsonl"
        fresh = work / f".in-{index:05d}.new.jsonl"
        write_jsonl(fresh, rows)
        sha = file_sha256(fresh)
        if path.exists() and file_sha256(path) == sha:
            fresh.unlink()
        else:
            fresh.replace(path)
        shards.append({"index": index, "first": rows[0]["i"], "count": len(rows), "sha256": sha})
        rows, size = [], 0

    for path in files:
        for doc_id, text in _documents(path):
            rows.append({"i": number, "id": doc_id, "source": path.name, "text": text})
            number += 1
            size += len(text)
            if size >= limit:
                flush()
    if rows:
        flush()
    if not shards:
        raise ConfigError("no text records among the inputs")
    return shards


def _done(path: Path, key: str) -> dict[str, Any] | None:
    state = read_json(path)
    return state if isinstance(state, dict) and state.get("key") == key else None


def _partition(pairs: np.ndarray, buckets: int, base: Path) -> None:
    """Save ``pairs`` sorted by bucket (key mod ``buckets``) with the bucket offsets."""
    order = np.argsort(pairs["key"] % np.uint64(buckets), kind="stable")
    pairs = pairs[order]
    offsets = np.searchsorted(pairs["key"] % np.uint64(buckets), np.arange(buckets + 1))
    np.save(base.with_suffix(".npy"), pairs)
    np.save(base.with_suffix(".off.npy"), offsets)


def _bucket_slice(base: Path, bucket: int) -> np.ndarray:
    offsets = np.load(base.with_suffix(".off.npy"))
    pairs = np.load(base.with_suffix(".npy"), mmap_mode="r")
    return np.array(pairs[offsets[bucket] : offsets[bucket + 1]])


def filter_shard(job: dict[str, Any]) -> dict[str, Any]:
    """Map stage ``filter``: per-document steps on one shard."""
    work, shard, cfg = Path(job["work"]), job["shard"], CorpusConfig(**job["config"])
    k, buckets = shard["index"], job["buckets"]
    key = digest("filter", shard["sha256"], cfg.digest(), str(buckets))
    done = work / f"f-{k:05d}.done"
    if (state := _done(done, key)) is not None:
        return state
    stats: dict[str, StepStats] = {}
    before: list[int] = []
    langs: Counter[str] = Counter()
    pairs: list[tuple[int, int]] = []
    line_cfg = cfg.line_dedup
    hash_lines = line_cfg.enabled and line_cfg.across_documents
    spans = line_cfg.sentence_spans

    def kept() -> Iterator[dict[str, Any]]:
        for row in iter_jsonl(work / f"in-{k:05d}.jsonl"):
            before.append(len(row["text"]))
            result = process_document(row["text"], cfg)
            if result.language:
                langs[result.language] += 1
            if result.text is None:
                step = stats.setdefault(result.step, StepStats())
                step.drop_doc(result.reason, row["id"], row["i"], row["text"])
                continue
            for name, drops in result.line_drops.items():
                stats.setdefault(name, StepStats()).drop_lines(
                    drops, row["id"], row["i"], _removed_sample(drops, row["text"])
                )
            if hash_lines:
                units = {u for line in dedup_units(result.text, spans) for u in line}
                pairs.extend((_h64(u), row["i"]) for u in units if len(u) >= line_cfg.min_chars)
            out = {"i": row["i"], "id": row["id"], "source": row["source"], "text": result.text}
            if result.language:
                out["language"], out["language_score"] = result.language, result.language_score
            yield out

    count = write_jsonl(work / f"f-{k:05d}.jsonl", kept())
    _partition(np.array(pairs, dtype=_PAIR), buckets, work / f"f-{k:05d}.lines")
    state = {
        "key": key,
        "kept": count,
        "lengths_before": _histogram(before),
        "languages_before": dict(sorted(langs.items())),
        "stats": {name: s.as_json() for name, s in stats.items()},
    }
    write_json(done, state)
    return state


def _removed_sample(drops: LineDrops, text: str) -> str:
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted(drops.lines.items()))
    return f"[{reasons}] {text}"


def reduce_lines(job: dict[str, Any]) -> dict[str, Any]:
    """Reduce stage ``lines``: per bucket, the (document, line) pairs to remove."""
    work, bucket, cfg = Path(job["work"]), job["bucket"], CorpusConfig(**job["config"])
    key = digest("lines", *job["upstream"])
    done = work / f"l-{bucket:05d}.done"
    if (state := _done(done, key)) is not None:
        return state
    parts = [_bucket_slice(work / f"f-{k:05d}.lines", bucket) for k in range(job["shards"])]
    pairs = np.unique(np.concatenate(parts)) if parts else np.empty(0, _PAIR)  # sorted
    remove = np.empty(0, _PAIR)
    if len(pairs):
        starts = np.flatnonzero(np.r_[True, pairs["key"][1:] != pairs["key"][:-1]])
        sizes = np.diff(np.r_[starts, len(pairs)])
        group = np.repeat(sizes, sizes)
        first = np.zeros(len(pairs), bool)
        first[starts] = True
        remove = pairs[(group >= cfg.line_dedup.min_docs) & ~first]
    remove = np.sort(remove, order=["i", "key"])
    np.save(work / f"l-{bucket:05d}.npy", remove)
    state = {"key": key, "removed": len(remove)}
    write_json(done, state)
    return state


def keys_shard(job: dict[str, Any]) -> dict[str, Any]:
    """Map stage ``keys``: drop the corpus-wide repeated lines, then hash each document."""
    work, shard, cfg = Path(job["work"]), job["shard"], CorpusConfig(**job["config"])
    k, buckets = shard["index"], job["buckets"]
    key = digest("keys", job["filter_key"], *job["upstream"])
    done = work / f"k-{k:05d}.done"
    if (state := _done(done, key)) is not None:
        return state
    lo, hi = shard["first"], shard["first"] + shard["count"]
    removals: dict[int, set[int]] = {}
    for bucket in range(buckets):
        found = np.load(work / f"l-{bucket:05d}.npy", mmap_mode="r")
        a, b = np.searchsorted(found["i"], [lo, hi])
        for i, h in zip(found["i"][a:b].tolist(), found["key"][a:b].tolist(), strict=True):
            removals.setdefault(i, set()).add(h)
    stats = StepStats()
    keys: list[tuple[int, int, int]] = []
    near = cfg.near_dedup
    bands, rows = band_params(near.threshold, near.num_perm)

    def kept() -> Iterator[dict[str, Any]]:
        for row in iter_jsonl(work / f"f-{k:05d}.jsonl"):
            text = row["text"]
            gone = removals.get(row["i"])
            if gone:
                drops = LineDrops()
                lines = []
                reason = (
                    "span_" if cfg.line_dedup.sentence_spans else ""
                ) + "repeated_across_documents"
                for line_units in dedup_units(text, cfg.line_dedup.sentence_spans):
                    kept_units = []
                    for u in line_units:
                        if _h64(u) in gone:
                            drops.add(reason, u)
                        else:
                            kept_units.append(u)
                    if kept_units or not line_units:
                        lines.append(" ".join(kept_units))
                text = "\n".join(lines).strip()
                if len(text) < max(1, cfg.min_chars):
                    stats.drop_doc("emptied", row["id"], row["i"], row["text"])
                    continue
                stats.drop_lines(drops, row["id"], row["i"], _removed_sample(drops, row["text"]))
                row["text"] = text
            if cfg.exact_dedup:
                keys.append((0, _h64(_WS.sub(" ", text.casefold()).strip()), row["i"]))
            if near.enabled:
                for band, bkey in enumerate(band_keys(text, near, bands, rows), start=1):
                    keys.append((band, bkey, row["i"]))
            yield row

    count = write_jsonl(work / f"k-{k:05d}.jsonl", kept())
    _partition(np.array(keys, dtype=_KEY), buckets, work / f"k-{k:05d}.keys")
    state = {"key": key, "kept": count, "stats": stats.as_json()}
    write_json(done, state)
    return state


def reduce_dups(job: dict[str, Any]) -> dict[str, Any]:
    """Reduce stage ``dups``: per bucket, edges from each duplicate to the first document
    with the same exact hash (kind 0) or MinHash band key (kind ≥ 1)."""
    work, bucket = Path(job["work"]), job["bucket"]
    key = digest("dups", *job["upstream"])
    done = work / f"d-{bucket:05d}.done"
    if (state := _done(done, key)) is not None:
        return state
    parts = [_bucket_slice(work / f"k-{k:05d}.keys", bucket) for k in range(job["shards"])]
    keys = np.sort(np.concatenate(parts), order=["kind", "key", "i"]) if parts else None
    edges = np.empty((0, 3), np.int64)
    if keys is not None and len(keys):
        new = np.r_[
            True, (keys["kind"][1:] != keys["kind"][:-1]) | (keys["key"][1:] != keys["key"][:-1])
        ]
        starts = np.flatnonzero(new)
        sizes = np.diff(np.r_[starts, len(keys)])
        head = np.repeat(keys["i"][starts], sizes)
        dup = ~new
        edges = np.stack(
            [keys["i"][dup], head[dup], (keys["kind"][dup] == 0).astype(np.int64)], axis=1
        )
    np.save(work / f"d-{bucket:05d}.npy", edges)
    state = {"key": key, "edges": len(edges)}
    write_json(done, state)
    return state


def resolve_duplicates(work: Path, buckets: int) -> dict[int, tuple[int, str]]:
    """Every duplicate document → (the first document of its group, ``exact``/``near``).

    Exact groups first (a copy names the first copy); the rest are joined by union-find
    over the near-duplicate edges, each group keeping its lowest-numbered document.
    """
    edges = np.concatenate([np.load(work / f"d-{b:05d}.npy") for b in range(buckets)])
    removed: dict[int, tuple[int, str]] = {}
    exact = edges[edges[:, 2] == 1]
    for i, head in sorted(zip(exact[:, 0].tolist(), exact[:, 1].tolist(), strict=True)):
        prev = removed.get(i)
        if prev is None or head < prev[0]:
            removed[i] = (head, "exact")
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    near = edges[edges[:, 2] == 0]
    for a, b in zip(near[:, 0].tolist(), near[:, 1].tolist(), strict=True):
        a = removed[a][0] if a in removed else a
        b = removed[b][0] if b in removed else b
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    for node in sorted(parent):
        root = find(node)
        if root != node and node not in removed:
            removed[node] = (root, "near")
    return removed


def write_shard(job: dict[str, Any]) -> dict[str, Any]:
    """Map stage ``write``: drop duplicates, redact, split, write the output shards."""
    from llmeco.data.clean import redact_pii

    work, out, shard = Path(job["work"]), Path(job["out"]), job["shard"]
    cfg = CorpusConfig(**job["config"])
    k = shard["index"]
    key = digest("write", job["keys_key"], job["resolution"])
    done = work / f"w-{k:05d}.done"
    names = {"train": f"train-{k:05d}.jsonl.zst", "validation": f"validation-{k:05d}.jsonl.zst"}
    if (state := _done(done, key)) is not None and all((out / n).exists() for n in names.values()):
        return state
    removed = {int(i): (int(h), r) for i, h, r in job["removed"]}
    wanted_ids = set(job["heads"])
    ids: dict[str, str] = {}
    dropped: list[dict[str, Any]] = []
    stats = {"exact_dedup": StepStats(), "near_dedup": StepStats()}
    after: list[int] = []
    langs: Counter[str] = Counter()
    redacted: Counter[str] = Counter()
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "validation": []}
    for row in iter_jsonl(work / f"k-{k:05d}.jsonl"):
        i = row["i"]
        if i in wanted_ids:
            ids[str(i)] = row["id"]
        if i in removed:
            head, kind = removed[i]
            stats[f"{kind}_dedup"].drop_doc(kind, row["id"], i, row["text"])
            dropped.append({"i": i, "id": row["id"], "of": head, "kind": kind})
            continue
        text = row["text"]
        if cfg.redact:
            text, counts = redact_pii(text)
            redacted.update(counts)
        record: dict[str, Any] = {"id": row["id"], "text": text, "source": row["source"]}
        if "language" in row:
            record["language"], record["language_score"] = row["language"], row["language_score"]
            langs[row["language"]] += 1
        after.append(len(text))
        side = is_validation(
            _h64(text).to_bytes(8, "little").hex(), cfg.validation_fraction, cfg.seed
        )
        splits["validation" if side else "train"].append(record)
    files = {}
    for split, rows in splits.items():
        path = out / names[split]
        write_jsonl(path, rows)
        files[names[split]] = {
            "records": len(rows),
            "bytes": path.stat().st_size,
            "sha256": file_sha256(path),
        }
    state = {
        "key": key,
        "files": files,
        "ids": ids,
        "duplicates": dropped,
        "lengths_after": _histogram(after),
        "languages_after": dict(sorted(langs.items())),
        "redacted": dict(sorted(redacted.items())),
        "stats": {name: s.as_json() for name, s in stats.items()},
    }
    write_json(done, state)
    return state
