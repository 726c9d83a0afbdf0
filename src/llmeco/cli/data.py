"""``llmeco data prepare`` and ``llmeco tokenizer train``: raw files → dataset → tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

data_app = typer.Typer(help="Prepare datasets: clean, dedupe, redact, split.", no_args_is_help=True)
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
