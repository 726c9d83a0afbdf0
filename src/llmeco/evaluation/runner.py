"""Run a suite against a model and write the run: ``results.json``, ``report.md``,
``chart.png`` and ``predictions/TASK.jsonl``.

The model reference is resolved once (a registry reference is verified file by file then);
scoring tasks load it for log-likelihoods, generation tasks start the engine on it, each
only if some task needs it. Generation is greedy with a fixed seed, so a run is repeatable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmeco import __version__
from llmeco.errors import ConfigError
from llmeco.evaluation.context import EvalContext, ProgressFn, Retriever
from llmeco.evaluation.report import write_run
from llmeco.evaluation.suite import Suite
from llmeco.evaluation.tasks import task_types
from llmeco.settings import Settings

if TYPE_CHECKING:
    from llmeco.engine.protocol import EngineClient


def new_run_id(suite: str, model: str) -> str:
    """A sortable, unique, filesystem-safe run id: ``YYYYmmdd-HHMMSS-suite-model-xxxx``."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in model)[-40:]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{suite}-{safe}-{uuid.uuid4().hex[:4]}"


async def run_suite(
    suite: Suite,
    ref: str,
    settings: Settings,
    *,
    out_dir: Path | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
    batch_tokens: int = 4096,
    concurrency: int = 32,
    retrievers: Mapping[str, Retriever] | None = None,
    progress: ProgressFn | None = None,
    engine: EngineClient | None = None,
    scoring_url: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Evaluate model ``ref`` on ``suite``; return the results and the run directory.

    ``tasks`` selects tasks by name; ``limit`` caps every task's records (quick checks);
    ``engine`` reuses a running engine for generation (tests, a server) instead of starting
    one. ``out_dir`` defaults to ``LLMECO_HOME/evals/RUN_ID``.

    Raises:
        ConfigError: ``tasks`` names a task the suite does not have; anything the model
            reference or a task raises.
    """
    from llmeco.modeling.load import resolve_model
    from llmeco.registry.checkout import resolve_local
    from llmeco.registry.refs import parse_ref

    chosen = list(suite.tasks)
    if tasks:
        unknown = sorted(set(tasks) - {t.name for t in suite.tasks})
        if unknown:
            raise ConfigError(f"suite {suite.name!r} has no task {', '.join(unknown)}")
        chosen = [t for t in suite.tasks if t.name in tasks]
    source = resolve_model(ref, settings, resolve_ref=resolve_local)
    run_id = new_run_id(suite.name, ref)
    out = out_dir if out_dir is not None else settings.home / "evals" / run_id
    registry_ref = parse_ref(ref) if not Path(ref).exists() else None
    ctx = EvalContext(
        settings,
        source.path,
        source.name,
        batch_tokens=batch_tokens,
        concurrency=concurrency,
        retrievers=retrievers,
        progress=progress,
        engine=engine,
        scoring_url=scoring_url,
    )
    started = time.perf_counter()
    created = datetime.now(UTC)
    results: dict[str, Any] = {}
    predictions: dict[str, list[dict[str, Any]]] = {}
    try:
        for task in chosen:
            if limit is not None:
                task = task.model_copy(update={"limit": min(limit, task.limit or limit)})
            t0 = time.perf_counter()
            result = await task_types()[task.type].run(task, ctx)
            results[task.name] = {
                "type": task.type,
                "description": task.description,
                "n": result.n,
                "metrics": result.metrics,
                "details": result.details,
                "duration_s": round(time.perf_counter() - t0, 3),
            }
            predictions[task.name] = result.predictions
    finally:
        await ctx.close()
    record: dict[str, Any] = {
        "run_id": run_id,
        "created_at": created.isoformat(),
        "duration_s": round(time.perf_counter() - started, 3),
        "llmeco_version": __version__,
        "model": {
            "ref": ref,
            "name": source.name,
            "origin": source.origin,
            "path": str(source.path),
            "registry": _registry_info(registry_ref, source.origin),
        },
        "suite": suite.describe(),
        "settings": {
            "device": settings.device,
            "dtype": settings.dtype,
            "batch_tokens": batch_tokens,
            "concurrency": concurrency,
            "limit": limit,
        },
        "tasks": results,
    }
    write_run(out, record, predictions)
    return record, out


def _registry_info(ref: Any, origin: str) -> dict[str, Any] | None:
    """``{"name", "version"}`` when the model came from the registry (origin names NAME:V)."""
    if ref is None or not origin.startswith("registry "):
        return None
    name, _, version = origin.split()[1].partition(":")
    return {"name": name, "version": int(version), "ref": str(ref)}
