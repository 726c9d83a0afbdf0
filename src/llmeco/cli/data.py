"""``llmeco data prepare`` and ``llmeco tokenizer train``: raw files → dataset → tokenizer;
``llmeco data purge`` and ``llmeco data forget``: retention and erasure of stored personal data
(:mod:`llmeco.governance.retention`, :mod:`llmeco.governance.erasure`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

data_app = typer.Typer(
    help="Prepare datasets (clean, dedupe, redact, split); purge and erase stored personal data.",
    no_args_is_help=True,
)
if TYPE_CHECKING:
    from llmeco.governance.audit import AuditLedger
    from llmeco.settings import Settings
    from llmeco.store import Store

tokenizer_app = typer.Typer(help="Train tokenizers on prepared datasets.", no_args_is_help=True)


@data_app.command("prepare")
def prepare(
    inputs: Annotated[
        list[Path], typer.Argument(help="Files or folders (txt, md, html, jsonl, csv).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write.")],
    validation: Annotated[float, typer.Option(help="Fraction held out for validation.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the hash split.")] = 0,
    min_chars: Annotated[int, typer.Option(min=0, help="Drop texts shorter than this.")] = 20,
    min_letter_ratio: Annotated[float, typer.Option(help="Drop texts with fewer letters.")] = 0.5,
    no_redact: Annotated[bool, typer.Option("--no-redact", help="Keep PII as is.")] = False,
    no_near_dedup: Annotated[
        bool, typer.Option("--no-near-dedup", help="Exact dedup only.")
    ] = False,
    near_threshold: Annotated[float, typer.Option(help="MinHash Jaccard threshold.")] = 0.8,
    skip_bad_files: Annotated[
        bool, typer.Option("--skip-bad-files", help="List unreadable files instead of stopping.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out.")
    ] = False,
) -> None:
    """Read, normalise, dedupe, redact PII, filter and split files into a dataset."""
    from llmeco.data.pipeline import PrepareOptions, prepare_dataset

    console = Console(stderr=True)
    options = PrepareOptions(
        validation_fraction=validation,
        seed=seed,
        min_chars=min_chars,
        min_letter_ratio=min_letter_ratio,
        redact=not no_redact,
        near_dedup=not no_near_dedup,
        near_threshold=near_threshold,
        skip_bad_files=skip_bad_files,
    )
    with console.status("reading") as status:
        manifest = prepare_dataset(
            inputs,
            out,
            options,
            overwrite=overwrite,
            on_file=lambda p: status.update(f"reading {p}"),
        )
    counts = manifest["counts"]
    table = Table(title=f"dataset {out}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key in ("files", "records_read", "text", "chat", "train", "validation"):
        table.add_row(key, str(counts[key]))
    for key, value in counts["dropped"].items():
        table.add_row(f"dropped: {key}", str(value))
    for key, value in counts["redacted"].items():
        table.add_row(f"redacted: {key}", str(value))
    for name, info in manifest["files"].items():
        table.add_row(name, f"{info['bytes']} B")
    Console().print(table)
    for error in manifest["errors"]:
        console.print(f"skipped: {error}", style="yellow", markup=False)


@tokenizer_app.command("train")
def train_tokenizer_cmd(
    dataset: Annotated[Path, typer.Argument(help="A folder from `llmeco data prepare`.")],
    vocab_size: Annotated[int, typer.Option("--vocab-size", help="Vocabulary size.")] = 8000,
    out: Annotated[Path, typer.Option("--out", help="Tokenizer folder to write.")] = Path(
        "tokenizer"
    ),
    min_frequency: Annotated[int, typer.Option(min=1, help="Least pair count to merge.")] = 2,
) -> None:
    """Train a byte-level BPE tokenizer that `transformers.AutoTokenizer` loads."""
    from llmeco.data.tokenizer import train_tokenizer

    with Console(stderr=True).status("training tokenizer"):
        tok = train_tokenizer(dataset, vocab_size, out, min_frequency)
    Console().print(f"saved tokenizer with {len(tok)} tokens to {out}")


def _open_store() -> tuple[Settings, Store]:
    import llmeco.apps.conversations  # noqa: F401  (registers the conversation tables)
    from llmeco.settings import Settings
    from llmeco.store import Store

    settings = Settings()
    return settings, Store.from_settings(settings)


def _open_ledger(settings: Settings, store: Store) -> AuditLedger | None:
    """The store's audit ledger, to record the purge or erasure (None with audit off)."""
    if not settings.audit:
        return None
    from llmeco.governance.audit import AuditLedger

    return AuditLedger.open(settings, store)


@data_app.command("purge")
def purge_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what is past its age; delete nothing.")
    ] = False,
    policy_file: Annotated[
        Path | None,
        typer.Option("--policy", help="YAML of `kind: days` (and `batch: n`) over the settings."),
    ] = None,
) -> None:
    """Delete what is past its retention (LLMECO_RETENTION_*_DAYS), in short batches; ledger
    entries keep their hash and lose only their stored bodies."""
    from llmeco.governance.retention import KINDS, RetentionPolicy, purge

    settings, store = _open_store()
    policy = RetentionPolicy.from_settings(settings)
    if policy_file is not None:
        policy = policy.with_file(policy_file)
    console = Console(stderr=True)
    if not policy.configured:
        console.print(
            f"no retention is set (LLMECO_RETENTION_<KIND>_DAYS or --policy; kinds: "
            f"{', '.join(KINDS)}); nothing to purge"
        )
        store.close()
        return
    ledger = None if dry_run else _open_ledger(settings, store)
    removed = 0
    try:
        with console.status("purging") as status:

            def advance(table: str, rows: int) -> None:
                nonlocal removed
                removed += rows
                status.update(f"purging {table}: {removed} rows so far")

            results = purge(store, policy, dry_run=dry_run, ledger=ledger, on_batch=advance)
    finally:
        if ledger is not None:
            ledger.close()
        store.close()
    table = Table(title="would purge (dry run)" if dry_run else "purged")
    for column in ("kind", "table", "older than", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for r in results:
        table.add_row(r.kind, r.table, r.before.strftime("%Y-%m-%d %H:%M:%SZ"), str(r.count))
    Console().print(table)


@data_app.command("forget")
def forget_cmd(
    session: Annotated[str | None, typer.Option("--session", help="A support session id.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="An API key id.")] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="An end-user id (the OpenAI `user` field).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be removed; remove nothing.")
    ] = False,
) -> None:
    """Erase every stored record of one subject (conversation turns, feedback, hand-offs, its
    ledger bodies; the key's past usage), in one transaction; print the rows per table."""
    from llmeco.errors import InvalidRequest
    from llmeco.governance.erasure import forget

    given = [(k, v) for k, v in (("session", session), ("key", key), ("user", user)) if v]
    if len(given) != 1:
        raise InvalidRequest("name exactly one subject: --session ID, --key ID or --user TEXT")
    kind, value = given[0]
    settings, store = _open_store()
    ledger = None if dry_run else _open_ledger(settings, store)
    try:
        report = forget(store, kind, value, dry_run=dry_run, ledger=ledger)
    finally:
        if ledger is not None:
            ledger.close()
        store.close()
    action = "would remove (dry run)" if dry_run else "removed"
    out = Console()
    out.print(f"{kind} sha256:{report.digest[:16]}… — {action}", markup=False)
    table = Table()
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in report.counts.items():
        table.add_row(name, str(count))
    table.add_row("total", str(report.total), style="bold")
    out.print(table)
