"""``llmeco data prepare`` and ``llmeco tokenizer train``: raw files → dataset → tokenizer;
``llmeco data purge`` and ``llmeco data forget``: retention and erasure of stored personal data
(:mod:`llmeco.governance.retention`, :mod:`llmeco.governance.erasure`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    validation: Annotated[
        float | None,
        typer.Option(help="Fraction held out for validation (default 0.1; 0 with --corpus)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the hash split (default 0).")] = None,
    min_chars: Annotated[
        int | None, typer.Option(min=0, help="Drop texts shorter than this (default 20).")
    ] = None,
    min_letter_ratio: Annotated[float, typer.Option(help="Drop texts with fewer letters.")] = 0.5,
    no_redact: Annotated[bool, typer.Option("--no-redact", help="Keep PII as is.")] = False,
    no_near_dedup: Annotated[
        bool, typer.Option("--no-near-dedup", help="Exact dedup only.")
    ] = False,
    near_threshold: Annotated[
        float | None, typer.Option(help="MinHash Jaccard threshold (default 0.8).")
    ] = None,
    skip_bad_files: Annotated[
        bool, typer.Option("--skip-bad-files", help="List unreadable files instead of stopping.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out.")
    ] = False,
    corpus: Annotated[
        bool,
        typer.Option(
            "--corpus",
            help="Web-corpus steps (language id, Gopher, C4, FineWeb, line dedup, exact and "
            "MinHash dedup) with the published defaults; output in zstd shards.",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML of corpus step settings (implies --corpus)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a corpus setting, e.g. --set c4.enabled=false."),
    ] = None,
    languages: Annotated[
        str | None, typer.Option(help="Languages to keep, e.g. en,zh (implies --corpus).")
    ] = None,
    shard_mb: Annotated[float, typer.Option(help="Corpus shard size, MB of text.")] = 64.0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Reuse the shards of an interrupted --out.")
    ] = False,
    ray: Annotated[
        bool, typer.Option("--ray", help="Run the corpus steps on Ray Data (implies --corpus).")
    ] = False,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: start a local one).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Ray workers (CPUs).")] = 2,
) -> None:
    """Read, normalise, dedupe, redact PII, filter and split files into a dataset."""
    from llmeco.data.pipeline import PrepareOptions, prepare_dataset

    console = Console(stderr=True)
    if corpus or config or languages or ray or set_:
        _prepare_corpus(
            inputs,
            out,
            config,
            _corpus_overrides(
                set_,
                languages,
                validation,
                seed,
                min_chars,
                no_redact,
                no_near_dedup,
                near_threshold,
            ),
            shard_mb=shard_mb,
            overwrite=overwrite,
            resume=resume,
            ray=(address, workers) if ray else None,
        )
        return
    options = PrepareOptions(
        validation_fraction=0.1 if validation is None else validation,
        seed=seed or 0,
        min_chars=20 if min_chars is None else min_chars,
        min_letter_ratio=min_letter_ratio,
        redact=not no_redact,
        near_dedup=not no_near_dedup,
        near_threshold=0.8 if near_threshold is None else near_threshold,
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


def _corpus_overrides(
    items: list[str] | None,
    languages: str | None,
    validation: float | None,
    seed: int | None,
    min_chars: int | None,
    no_redact: bool,
    no_near_dedup: bool,
    near_threshold: float | None,
) -> dict[str, Any]:
    """The corpus settings the command line gives (over the --config file; ``--set`` wins)."""
    import yaml

    from llmeco.errors import InvalidRequest

    given = {
        "validation_fraction": validation,
        "seed": seed,
        "min_chars": min_chars,
        "near_dedup.threshold": near_threshold,
    }
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if no_redact:
        overrides["redact"] = False
    if no_near_dedup:
        overrides["near_dedup.enabled"] = False
    if languages:
        overrides["language.languages"] = [c.strip() for c in languages.split(",") if c.strip()]
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InvalidRequest(f"--set wants key=value, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(raw)
    return overrides


def _prepare_corpus(
    inputs: list[Path],
    out: Path,
    config: Path | None,
    overrides: dict[str, Any],
    *,
    shard_mb: float,
    overwrite: bool,
    resume: bool,
    ray: tuple[str | None, int] | None,
) -> None:
    from llmeco.data.corpus_run import local_map, prepare_corpus, ray_mapper
    from llmeco.data.steps import load_corpus_config

    cfg = load_corpus_config(config, overrides)
    mapper = ray_mapper(*ray) if ray else local_map
    with Console(stderr=True).status("preparing corpus") as status:
        manifest = prepare_corpus(
            inputs,
            out,
            cfg,
            shard_mb=shard_mb,
            mapper=mapper,
            overwrite=overwrite,
            resume=resume,
            on_stage=lambda name: status.update(f"stage: {name}"),
        )
    table = Table(title=f"corpus {out} ({manifest['counts']['shards']} shards)")
    for column in ("step", "documents left", "docs dropped", "lines dropped", "chars dropped"):
        table.add_column(column, justify="left" if column == "step" else "right")
    steps = manifest["steps"]
    for row in manifest["funnel"]:
        step = steps.get(row["step"], {})
        table.add_row(
            row["step"],
            str(row["documents"]),
            str(step.get("documents_dropped", "")),
            str(step.get("lines_dropped", "")),
            str(step.get("chars_dropped", "")),
        )
    Console().print(table)
    Console().print(
        f"train {manifest['counts']['train']}, validation {manifest['counts']['validation']}; "
        f"report: llmeco data report {out}",
        markup=False,
    )


@data_app.command("report")
def report_cmd(
    dataset: Annotated[Path, typer.Argument(help="A folder from `llmeco data prepare`.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for report.html and the PNGs.")
    ] = None,
) -> None:
    """Render the dataset's manifest as an HTML page with PNG charts (funnel, lengths,
    languages)."""
    from llmeco.data.report import write_report

    page = write_report(dataset, out or dataset / "report")
    Console().print(f"wrote {page}", markup=False)


@data_app.command("pack")
def pack_cmd(
    dataset: Annotated[Path, typer.Argument(help="A folder from `llmeco data prepare`.")],
    tokenizer: Annotated[str, typer.Option(help="Tokenizer folder (or 'default').")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the token shards.")],
    shard_tokens: Annotated[
        int, typer.Option(min=1024, help="Tokens per shard file.")
    ] = 50_000_000,
) -> None:
    """Tokenize the train and validation splits into packed binary shards (uint16/uint32
    memmaps with an index) that `llmeco train pretrain` reads without loading the corpus."""
    from llmeco.data.packed import pack_dataset
    from llmeco.modeling.load import load_tokenizer, resolve_model
    from llmeco.settings import Settings

    with Console(stderr=True).status("tokenizing"):
        path = Path(tokenizer)
        if not path.is_dir():
            path = resolve_model(tokenizer, Settings()).path
        index = pack_dataset(dataset, load_tokenizer(path), out, shard_tokens=shard_tokens)
    for split, info in index["splits"].items():
        Console().print(
            f"{split}: {info['tokens']} tokens, {info['documents']} documents, "
            f"{len(info['shards'])} shard(s) ({index['dtype']})",
            markup=False,
        )


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
