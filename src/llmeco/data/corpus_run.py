"""Drive the corpus stages (:mod:`llmeco.data.corpus`) in this process or on Ray Data.

Both drivers hand the same JSON jobs to the same stage functions and order the results by
shard/bucket number, so their outputs are byte-identical. On Ray each map and reduce stage
is a ``ray.data`` dataset of jobs mapped over ``workers`` actors-free tasks; the shuffle
between map and reduce goes through the work folder, which on a cluster must be shared
storage (what every worker sees at the same path).

Output (``DIR``)::

    train-K.jsonl.zst, validation-K.jsonl.zst   one pair per input shard
    manifest.json     per-step counts and examples, the funnel, length histograms,
                      languages, duplicates (id → id it duplicates), shard hashes
    .work/            intermediate shards and ``.done`` keys (what ``--resume`` reuses)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmeco import __version__
from llmeco.data import corpus
from llmeco.data.langid import check_languages
from llmeco.data.pipeline import MANIFEST_FORMAT
from llmeco.data.shards import digest, write_json
from llmeco.data.steps import STEP_ORDER, CorpusConfig, StepStats
from llmeco.errors import ConfigError

Job = dict[str, Any]
Mapper = Callable[[Callable[[Job], Job], list[Job]], list[Job]]


def local_map(fn: Callable[[Job], Job], jobs: list[Job]) -> list[Job]:
    """Run the jobs one after another in this process."""
    return [fn(job) for job in jobs]


def _ray_call(row: dict[str, Any]) -> dict[str, Any]:
    import importlib

    module, name = row["fn"].rsplit(".", 1)
    fn = getattr(importlib.import_module(module), name)
    return {"n": row["n"], "result": json.dumps(fn(json.loads(row["job"])))}


def ray_mapper(address: str | None, workers: int) -> Mapper:
    """A mapper running each stage as a Ray Data ``map`` over its jobs (``workers`` CPUs;
    a local cluster unless ``address`` names one)."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--ray needs Ray Data: pip install 'llmeco[ray]'") from exc
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = workers
        ray.init(**kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False

    def run(fn: Callable[[Job], Job], jobs: list[Job]) -> list[Job]:
        rows = [
            {"n": n, "fn": f"{fn.__module__}.{fn.__name__}", "job": json.dumps(job)}
            for n, job in enumerate(jobs)
        ]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        done = ds.map(_ray_call, num_cpus=1, concurrency=workers).take_all()
        return [json.loads(r["result"]) for r in sorted(done, key=lambda r: r["n"])]

    return run


def _prepare_out(out: Path, *, overwrite: bool, resume: bool) -> Path:
    work = out / ".work"
    if out.exists() and any(out.iterdir()):
        if not (overwrite or resume):
            raise ConfigError(
                f"{out} exists and is not empty; pass --resume to continue it or --overwrite"
            )
        if overwrite and not resume:
            shutil.rmtree(out)
    work.mkdir(parents=True, exist_ok=True)
    return work


def prepare_corpus(
    inputs: list[Path],
    out: Path,
    cfg: CorpusConfig,
    *,
    shard_mb: float = 64.0,
    mapper: Mapper = local_map,
    overwrite: bool = False,
    resume: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every corpus step over ``inputs`` into ``out`` and return the manifest.

    Raises:
        ConfigError: bad options, ``out`` in the way, an unreadable input.
        NotFound: an input does not exist.
    """
    if shard_mb <= 0:
        raise ConfigError("--shard-mb must be positive")
    if cfg.language.languages:
        check_languages(cfg.language.languages)
    files = corpus.expand_corpus_inputs(inputs)
    out_dir = out.resolve()
    files = [f for f in files if not f.resolve().is_relative_to(out_dir)]
    if not files:
        raise ConfigError("no readable files among the inputs")
    work = _prepare_out(out, overwrite=overwrite, resume=resume)
    stage = on_stage or (lambda _name: None)
    config = cfg.model_dump()
    base = {"work": str(work), "config": config}

    stage("split")
    shards = corpus.split_inputs(files, work, shard_mb)
    buckets = len(shards)
    stage("filter")
    filtered = mapper(
        corpus.filter_shard, [{**base, "shard": s, "buckets": buckets} for s in shards]
    )
    stage("lines")
    line_jobs = [
        {**base, "bucket": b, "shards": len(shards), "upstream": [f["key"] for f in filtered]}
        for b in range(buckets)
    ]
    lines = mapper(corpus.reduce_lines, line_jobs)
    stage("keys")
    keyed = mapper(
        corpus.keys_shard,
        [
            {
                **base,
                "shard": s,
                "buckets": buckets,
                "filter_key": f["key"],
                "upstream": [r["key"] for r in lines],
            }
            for s, f in zip(shards, filtered, strict=True)
        ],
    )
    stage("dups")
    dup_jobs = [
        {**base, "bucket": b, "shards": len(shards), "upstream": [k["key"] for k in keyed]}
        for b in range(buckets)
    ]
    mapper(corpus.reduce_dups, dup_jobs)
    stage("resolve")
    removed = corpus.resolve_duplicates(work, buckets)
    resolution = digest(*(f"{i}:{h}:{r}" for i, (h, r) in sorted(removed.items())))
    stage("write")
    jobs = []
    for s, k in zip(shards, keyed, strict=True):
        lo, hi = s["first"], s["first"] + s["count"]
        mine = [[i, h, r] for i, (h, r) in sorted(removed.items()) if lo <= i < hi]
        heads = sorted({h for h, _ in removed.values() if lo <= h < hi})
        jobs.append(
            {
                **base,
                "out": str(out),
                "shard": s,
                "keys_key": k["key"],
                "resolution": resolution,
                "removed": mine,
                "heads": heads,
            }
        )
    written = mapper(corpus.write_shard, jobs)
    manifest = _manifest(cfg, files, shards, filtered, keyed, written, shard_mb)
    _remove_stale(out, manifest)
    write_json(out / "manifest.json", manifest)
    return manifest


def _sum(lists: list[list[int]]) -> list[int]:
    return [sum(col) for col in zip(*lists, strict=True)]


def _merge_counts(dicts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for key, value in d.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))


def _manifest(
    cfg: CorpusConfig,
    files: list[Path],
    shards: list[Job],
    filtered: list[Job],
    keyed: list[Job],
    written: list[Job],
    shard_mb: float,
) -> dict[str, Any]:
    steps: dict[str, StepStats] = {}
    for state in [*filtered, *written]:
        for name, data in state["stats"].items():
            steps.setdefault(name, StepStats()).merge(StepStats.from_json(data))
    for state in keyed:
        steps.setdefault("line_dedup", StepStats()).merge(StepStats.from_json(state["stats"]))
    read = sum(s["count"] for s in shards)
    funnel = [{"step": "read", "documents": read}]
    left = read
    for name in STEP_ORDER:
        if name in steps:
            left -= steps[name].docs
            funnel.append({"step": name, "documents": left})
    ids = {int(i): doc_id for w in written for i, doc_id in w["ids"].items()}
    duplicates = sorted((d for w in written for d in w["duplicates"]), key=lambda d: d["i"])
    out_files = {name: info for w in written for name, info in w["files"].items()}
    splits = {
        split: [n for n in sorted(out_files) if n.startswith(f"{split}-")]
        for split in ("train", "validation")
    }
    records = {
        split: sum(out_files[n]["records"] for n in names) for split, names in splits.items()
    }
    return {
        "format": MANIFEST_FORMAT,
        "layout": "shards",
        "llmeco_version": __version__,
        "options": {"corpus": cfg.model_dump(), "shard_mb": shard_mb},
        "inputs": [str(p) for p in files],
        "counts": {
            "files": len(files),
            "records_read": read,
            "shards": len(shards),
            "train": records["train"],
            "validation": records["validation"],
            "text": records["train"] + records["validation"],
            "chat": 0,
            "dropped": {n: steps[n].docs for n in STEP_ORDER if n in steps and steps[n].docs},
            "redacted": _merge_counts([w["redacted"] for w in written]),
        },
        "steps": {n: steps[n].as_json() for n in STEP_ORDER if n in steps},
        "funnel": funnel,
        "lengths": {
            "bins": list(corpus.LENGTH_BINS),
            "before": _sum([f["lengths_before"] for f in filtered]),
            "after": _sum([w["lengths_after"] for w in written]),
        },
        "languages": {
            "before": _merge_counts([f["languages_before"] for f in filtered]),
            "after": _merge_counts([w["languages_after"] for w in written]),
        },
        "duplicates": [
            {"id": d["id"], "duplicate_of": ids.get(d["of"], str(d["of"])), "kind": d["kind"]}
            for d in duplicates
        ],
        "shards": [
            {"index": s["index"], "documents": s["count"], "sha256": s["sha256"]} for s in shards
        ],
        "splits": splits,
        "errors": [],
        "files": dict(sorted(out_files.items())),
    }


def _remove_stale(out: Path, manifest: dict[str, Any]) -> None:
    """Delete output shards a previous, larger run left behind."""
    for path in out.glob("*.jsonl.zst"):
        if path.name not in manifest["files"]:
            path.unlink()
