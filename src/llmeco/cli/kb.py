"""``llmeco kb``: knowledge bases for the support assistant (create, add, search, list, remove,
calibrate the hand-off).

Everything is stored in the project store (``LLMECO_HOME/llmeco.db`` or
``LLMECO_DATABASE_URL``). ``kb add`` shows a progress bar per file and for embedding, reports
each file that fails by name and carries on with the rest, and exits 1 if any file failed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from llmeco.rag.kb import KnowledgeBase
    from llmeco.store import Store

kb_app = typer.Typer(help="Knowledge bases: documents the support assistant answers from.")


def _store() -> Store:
    # imported for their tables, which they register on Base
    import llmeco.apps.support.calibration
    import llmeco.rag.tables  # noqa: F401
    from llmeco.settings import Settings
    from llmeco.store import Store

    return Store.from_settings(Settings())


def _open(name: str) -> KnowledgeBase:
    from llmeco.rag.kb import KnowledgeBase

    return KnowledgeBase.open(_store(), name)


@kb_app.command("create")
def create(name: str = typer.Argument(..., help="Name of the new knowledge base.")) -> None:
    """Create an empty knowledge base."""
    from llmeco.rag.kb import KnowledgeBase

    kb = KnowledgeBase.create(_store(), name)
    typer.echo(f"created knowledge base {kb.name!r}")


@kb_app.command("add")
def add(
    name: str = typer.Argument(..., help="Knowledge base to add to."),
    paths: list[Path] = typer.Argument(..., help="Files (.txt .md .html .pdf .docx) or folders."),
    create: bool = typer.Option(False, "--create", help="Create the knowledge base if missing."),
) -> None:
    """Add or update documents; unchanged files are skipped, changed ones replaced."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from llmeco.errors import LlmecoError
    from llmeco.rag.kb import KnowledgeBase, open_or_create
    from llmeco.rag.parse import expand_paths

    store = _store()
    kb = open_or_create(store, name) if create else KnowledgeBase.open(store, name)
    err = Console(stderr=True, highlight=False)
    counts = {"added": 0, "updated": 0, "unchanged": 0, "failed": 0}
    files: list[tuple[Path, str]] = []
    for path in paths:
        try:
            files.extend(expand_paths([path]))
        except LlmecoError as exc:
            counts["failed"] += 1
            err.print(f"error: {exc.message}", style="red", markup=False)
    chunks = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
    ) as progress:
        overall = progress.add_task("files", total=len(files))
        embed = progress.add_task("embedding", total=None, visible=False)

        def on_embed(done: int, total: int) -> None:
            progress.update(embed, completed=done, total=total, visible=total > 0)

        for path, doc in files:
            progress.update(overall, description=f"files: {doc}")
            try:
                result = kb.add_file(path, doc, progress=on_embed)
            except LlmecoError as exc:
                counts["failed"] += 1
                err.print(f"error: {exc.message}", style="red", markup=False)
            else:
                counts[result.status] += 1
                chunks += result.chunks if result.status != "unchanged" else 0
                err.print(f"{result.status:9} {doc} ({result.chunks} chunks)", markup=False)
            progress.update(embed, visible=False, completed=0, total=None)
            progress.advance(overall)
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    typer.echo(f"{kb.name}: {summary or 'no files'}; {chunks} chunks indexed")
    if counts["failed"]:
        raise typer.Exit(1)


@kb_app.command("search")
def search(
    name: str = typer.Argument(..., help="Knowledge base to search."),
    query: str = typer.Argument(..., help="The question."),
    k: int = typer.Option(5, "-k", "--top-k", min=1, help="How many passages."),
    neighbors: int = typer.Option(0, "--neighbors", min=0, help="Widen hits by N chunks."),
    as_json: bool = typer.Option(False, "--json", help="Print hits as JSON lines."),
) -> None:
    """Show the passages that best answer QUERY (BM25 + vectors, fused by rank)."""
    hits = _open(name).search(query, k, neighbors=neighbors)
    if as_json:
        for hit in hits:
            typer.echo(json.dumps(hit.to_dict(), ensure_ascii=False))
        return
    console = Console(highlight=False)
    if not hits:
        console.print("no passages found")
    for i, hit in enumerate(hits, start=1):
        where = f"{hit.doc} › {hit.section}" if hit.section else hit.doc
        console.print(
            f"[bold][{i}][/bold] {where} [dim]chars {hit.start}-{hit.end} "
            f"score {hit.score:.4f} sim {hit.similarity:.3f}[/dim]"
        )
        console.print(hit.context if neighbors else hit.text, markup=False)
        console.print()


@kb_app.command("eval")
def evaluate(
    name: str = typer.Argument(..., help="Knowledge base to score."),
    questions: list[Path] = typer.Argument(
        ...,
        help="JSONL question sets (query, relevant, answer; unanswerable ones with an empty "
        "relevant; conversations as turns).",
    ),
    k: int = typer.Option(5, "-k", "--top-k", min=1, help="Cutoff for hit@k, MRR and nDCG."),
    answers: bool = typer.Option(
        False,
        "--answers",
        help="Also run the support assistant through the model and score its answers "
        "(correct, cited, grounded, hand-off precision/recall, follow-ups, latency).",
    ),
    model: str = typer.Option("default", "--model", help="With --answers: the model."),
    max_tokens: int = typer.Option(60, "--max-tokens", min=1, help="With --answers."),
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="With --answers."),
    details: Path = typer.Option(None, "--details", help="With --answers: outcomes (JSONL)."),
) -> None:
    """Score retrieval on question sets (hit@1/3/k, MRR@k, nDCG@k) and, with ``--answers``,
    the assistant's answers; prints JSON."""
    from llmeco.rag.evaluate import load_questions, score

    kb = _open(name)
    cutoffs = sorted({1, 3, k})
    qs = [q for path in questions for q in load_questions(path)]
    result: dict[str, object] = {
        "retrieval": score(lambda q: kb.search(q, k), qs, cutoffs=cutoffs).to_dict()
    }
    if answers:
        import asyncio

        from llmeco.apps.support.evaluate import load_items
        from llmeco.rag.kb import default_embedder
        from llmeco.server.support.evaluation import evaluate_answers
        from llmeco.settings import Settings

        items = [item for path in questions for item in load_items(path)]
        scored = asyncio.run(
            evaluate_answers(
                Settings(),
                name,
                items,
                default_embedder(),
                model=model,
                max_tokens=max_tokens,
                concurrency=concurrency,
            )
        )
        result["answers"] = scored.to_dict()
        if details is not None:
            details.write_text(
                "".join(
                    json.dumps(o, ensure_ascii=False) + "\n"
                    for o in scored.to_dict(details=True)["outcomes"]
                ),
                encoding="utf-8",
            )
    else:
        result = result["retrieval"]  # type: ignore[assignment]
    typer.echo(json.dumps(result, indent=2))


@kb_app.command("calibrate")
def calibrate(
    name: str = typer.Argument(..., help="Knowledge base to calibrate."),
    answerable: Path = typer.Argument(..., help="JSONL questions it answers (a 'query' each)."),
    unanswerable: Path = typer.Argument(..., help="JSONL questions it cannot answer."),
    handoff_target: float = typer.Option(
        0.8, help="Share of unanswerable questions to hand off (measured out of fold)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Fit and report; store nothing."),
) -> None:
    """Fit the support assistant's hand-off gate for this knowledge base on labelled questions
    and store it: ``support:NAME`` uses it from the next turn. Prints the gate as JSON."""
    from rich.progress import Progress

    from llmeco.apps.support.calibration import GateStore
    from llmeco.apps.support.calibration import calibrate as fit
    from llmeco.rag.kb import KnowledgeBase, default_embedder

    store = _store()
    kb = KnowledgeBase.open(store, name)
    with Progress(transient=True) as bar:
        task = bar.add_task("retrieving for each question", total=None)
        gate = fit(
            kb,
            default_embedder(),
            kb.embed_model,
            answerable,
            unanswerable,
            handoff_target=handoff_target,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if not dry_run:
        GateStore(store).put(name, gate)
    typer.echo(gate.to_json())
    rates = gate.fitted_on["out_of_fold"]
    typer.echo(
        f"{'fitted (not stored)' if dry_run else 'stored'}: out of fold, "
        f"{rates['answered']:.1%} of answerable questions answered, "
        f"{rates['handoff_unanswerable']:.1%} of unanswerable ones handed off",
        err=True,
    )


@kb_app.command("list")
def list_(
    name: str = typer.Argument(None, help="Show the documents of this knowledge base."),
) -> None:
    """List knowledge bases, or the documents of one."""
    from llmeco.rag.kb import list_knowledge_bases

    console = Console(highlight=False)
    if name is None:
        table = Table("name", "documents", "chunks", "embedding model", "created")
        for info in list_knowledge_bases(_store()):
            table.add_row(
                info.name,
                str(info.documents),
                str(info.chunks),
                info.embed_model,
                info.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)
        return
    table = Table("document", "chunks", "sha256", "added", "source")
    for doc in _open(name).documents():
        table.add_row(
            doc.name,
            str(doc.chunks),
            doc.content_hash[:12],
            doc.added_at.strftime("%Y-%m-%d %H:%M"),
            doc.source,
        )
    console.print(table)


@kb_app.command("remove")
def remove(
    name: str = typer.Argument(..., help="Knowledge base."),
    doc: str = typer.Argument(..., help="Document name as `kb list NAME` shows it."),
) -> None:
    """Remove one document and its chunks."""
    n = _open(name).remove(doc)
    typer.echo(f"removed {doc} ({n} chunks) from {name}")


@kb_app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Knowledge base to delete."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a knowledge base with all its documents (and its calibrated hand-off gate)."""
    from llmeco.apps.support.calibration import GateStore

    kb = _open(name)
    if not yes:
        typer.confirm(f"delete knowledge base {name!r} and all its documents?", abort=True)
    kb.drop()
    GateStore(kb.store).delete(name)
    typer.echo(f"deleted knowledge base {name!r}")
