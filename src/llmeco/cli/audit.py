"""``llmeco audit``: verify the tamper-evident ledger, export checkpoints, prove entries,
archive old entries.

``verify`` exits 1 (naming the first bad entry) when anything fails to check, 0 otherwise.
``archive`` moves the entries up to a signed checkpoint into a file and out of the store;
``verify``, ``prove``, ``consistency`` and ``show`` take ``--archive FILE`` (repeatable) to
reach back into archived history.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from llmeco.governance.audit.archive_file import ArchiveFile
    from llmeco.governance.audit.checkpoint import Checkpoint
    from llmeco.settings import Settings
    from llmeco.store import Store

audit_app = typer.Typer(
    help="Tamper-evident audit ledger: verify, checkpoints, inclusion proofs, archiving, "
    "key rotation.",
    no_args_is_help=True,
)


def _open() -> tuple[Settings, Store]:
    from llmeco.settings import Settings
    from llmeco.store import Store

    settings = Settings()
    return settings, Store.from_settings(settings)


def _public_key(settings: Settings, given: str | None) -> str:
    if given:
        return given.strip().lower()
    from llmeco.governance.audit.checkpoint import Signer

    return Signer.from_settings(settings).public_key


def _read_json(path: Path, what: str) -> Any:
    from llmeco.errors import InvalidRequest, NotFound

    if not path.is_file():
        raise NotFound(f"{what} file {path} does not exist")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise InvalidRequest(f"{path} is not JSON: {exc}") from None


def _load_checkpoint(path: Path) -> Checkpoint:
    from llmeco.governance.audit.checkpoint import Checkpoint

    return Checkpoint.from_dict(_read_json(path, "checkpoint"))


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _archives(paths: list[Path] | None) -> list[ArchiveFile]:
    from llmeco.governance.audit.archive_file import ArchiveFile

    return [ArchiveFile.open(p) for p in paths or []]


ArchiveOption = Annotated[
    list[Path] | None,
    typer.Option("--archive", "-a", help="Archive file from `audit archive` (repeat for several)."),
]


@audit_app.command()
def verify(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", "-c", help="Exported checkpoint to check against (repeat)."),
    ] = None,
    proof: Annotated[
        Path | None, typer.Option(help="Also check this proof (from `audit prove`).")
    ] = None,
    public_key: Annotated[
        str | None, typer.Option(help="Ledger public key (hex); default: this home's key.")
    ] = None,
    chain: Annotated[
        bool, typer.Option(help="Re-walk the whole chain (--no-chain: check the proof only).")
    ] = True,
    archive: ArchiveOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-walk the chain, its Merkle tree and checkpoints; exit 1 naming the first bad entry.

    After archiving, the walk starts at the archived boundary; with --archive it goes through
    the archives too (the whole history when every archive is given)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from llmeco.governance.audit.verify import verify_ledger, verify_proof

    settings, store = _open()
    key = _public_key(settings, public_key)
    anchors = [_load_checkpoint(p) for p in checkpoint or []]
    archives = _archives(archive)
    ok = True
    out: dict[str, Any] = {}
    console = Console(stderr=True)
    if chain:
        from sqlalchemy import func, select

        from llmeco.governance.audit import tables as t

        with store.session() as s:
            total = int(s.scalar(select(func.count()).select_from(t.entries)) or 0)
        total += sum(a.count for a in archives)
        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task("verify", total=total)
            report = verify_ledger(
                store, key, anchors, archives=archives, progress=lambda n: bar.advance(task, n)
            )
        out = report.to_dict()
        ok = report.ok
    if proof is not None:
        anchor = anchors[0] if anchors else None
        proof_ok, reason = verify_proof(_read_json(proof, "proof"), key, anchor)
        out["proof"] = {"ok": proof_ok, "message": reason}
        ok = ok and proof_ok
    store.close()
    if as_json:
        _print_json({**out, "ok": ok})
    else:
        if chain:
            state = "[green]intact[/]" if out["ok"] else "[red]TAMPERED[/]"
            typer.echo(f"{out['entries']} entries, {out['checkpoints']} checkpoints checked")
            if out["archived_up_to"]:
                checked = out["archived_checked"]
                typer.echo(
                    f"archived: entries 1..{out['archived_up_to']} "
                    + (
                        f"({checked} checked from archives)"
                        if checked
                        else "(not checked: --archive)"
                    )
                )
            for note in out["notes"]:
                typer.echo(f"  note: {note}")
            Console(highlight=False).print(f"chain: {state}")
            for p in out["problems"]:
                Console(highlight=False).print(f"  [red]- {p['message']}[/]")
            if out["first_bad_seq"] is not None:
                typer.echo(f"first bad entry: {out['first_bad_seq']}")
        if "proof" in out:
            mark = "ok" if out["proof"]["ok"] else "FAILED"
            typer.echo(f"proof: {mark}: {out['proof']['message']}")
    if not ok:
        raise typer.Exit(1)


@audit_app.command()
def checkpoint(
    now: Annotated[
        bool, typer.Option("--now", help="Sign a new checkpoint first if entries are uncovered.")
    ] = False,
    export: Annotated[
        Path | None, typer.Option(help="Also write the checkpoint (JSON) to this file.")
    ] = None,
) -> None:
    """Print the latest signed checkpoint (size, Merkle root, time, key, signature)."""
    from llmeco.errors import NotFound
    from llmeco.governance.audit import AuditLedger, latest_checkpoint

    settings, store = _open()
    if now:
        with AuditLedger.open(settings, store) as ledger:
            cp = ledger.checkpoint_now()
    else:
        cp = latest_checkpoint(store)
    store.close()
    if cp is None:
        raise NotFound("the ledger has no checkpoint yet (it is empty)")
    data = cp.to_dict()
    if export is not None:
        export.parent.mkdir(parents=True, exist_ok=True)
        export.write_text(json.dumps(data, indent=2) + "\n")
    _print_json(data)


@audit_app.command()
def prove(
    seq: Annotated[int, typer.Argument(help="Entry to prove.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", "-c", help="Prove against this exported checkpoint."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the proof here too.")] = None,
    archive: ArchiveOption = None,
) -> None:
    """Print an inclusion proof of entry SEQ (JSON) that `verify --proof` checks.

    An archived entry needs --archive (the file holding it); it is then proved against that
    archive's checkpoint unless --checkpoint names another."""
    from llmeco.governance.audit.verify import make_inclusion_proof

    _, store = _open()
    anchor = _load_checkpoint(checkpoint) if checkpoint else None
    proof = make_inclusion_proof(store, seq, anchor, archives=_archives(archive))
    store.close()
    if out is not None:
        out.write_text(json.dumps(proof, indent=2) + "\n")
    _print_json(proof)


@audit_app.command()
def consistency(
    old_size: Annotated[int, typer.Argument(help="Size of the older tree (an old checkpoint).")],
    out: Annotated[Path | None, typer.Option(help="Write the proof here too.")] = None,
    archive: ArchiveOption = None,
) -> None:
    """Print a proof that the first OLD_SIZE entries are unchanged in the latest checkpoint
    (an OLD_SIZE inside archived entries needs the archives after it: --archive)."""
    from llmeco.governance.audit.verify import make_consistency_proof

    _, store = _open()
    proof = make_consistency_proof(store, old_size, archives=_archives(archive))
    store.close()
    if out is not None:
        out.write_text(json.dumps(proof, indent=2) + "\n")
    _print_json(proof)


@audit_app.command()
def show(
    seq: Annotated[int, typer.Argument(help="Entry to show.")], archive: ArchiveOption = None
) -> None:
    """Print one entry (and its decrypted, redacted bodies when the ledger keeps them)."""
    from llmeco.governance.audit.verify import read_entry
    from llmeco.governance.crypto import Cipher

    settings, store = _open()
    entry = read_entry(store, seq, Cipher.from_settings(settings), _archives(archive))
    store.close()
    _print_json(entry)


@audit_app.command()
def tail(
    n: Annotated[int, typer.Option("-n", help="How many of the newest entries.")] = 20,
) -> None:
    """Show the newest entries as a table."""
    import sqlalchemy as sa
    from rich.console import Console
    from rich.table import Table

    from llmeco.governance.audit import tables as t

    _, store = _open()
    c = t.entries.c
    query = sa.select(c.seq, c.ts, c.kind, c.key_id, c.route, c.status, c.request_id)
    with store.session() as s:
        rows = s.execute(query.order_by(c.seq.desc()).limit(n)).all()
    store.close()
    table = Table("seq", "time", "kind", "key / actor", "route / action", "status", "request id")
    for r in reversed(rows):
        table.add_row(*(("" if v is None else str(v)) for v in r))
    Console().print(table)


def _size_line(label: str, size: dict[str, Any]) -> str:
    line = f"{label}: {size['rows']} rows, audit_entries {size['table_bytes']:,} bytes"
    if size.get("file_bytes") is not None:
        line += f", database file {size['file_bytes']:,} bytes"
    return line


@audit_app.command("archive")
def archive_cmd(
    out: Annotated[Path, typer.Argument(help="Archive file to write (JSONL; never overwritten).")],
    before_checkpoint: Annotated[
        str,
        typer.Option(
            "--before-checkpoint",
            help="Archive the entries up to this signed checkpoint's size, or 'latest' (the "
            "newest checkpoint that leaves --keep entries live).",
        ),
    ] = "latest",
    keep: Annotated[
        int, typer.Option(min=0, help="Keep at least this many of the newest entries live.")
    ] = 0,
    batch: Annotated[int, typer.Option(min=1, help="Rows deleted per transaction.")] = 1000,
    vacuum: Annotated[
        bool,
        typer.Option(
            help="Then give the space back (SQLite VACUUM / PostgreSQL VACUUM FULL: both "
            "block ledger writes while they run)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Move the oldest entries, up to a signed checkpoint, into OUT and out of the store.

    The file is written, fsynced and checked before any row is deleted; the archive is
    recorded in the ledger. Keep the file: `verify`/`prove --archive OUT` read it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from llmeco.errors import InvalidRequest
    from llmeco.governance.audit import AuditLedger
    from llmeco.governance.audit.archive import archive_ledger, table_size
    from llmeco.governance.audit.archive import vacuum as vacuum_store

    if before_checkpoint == "latest":
        size: int | None = None
    elif before_checkpoint.isdigit():
        size = int(before_checkpoint)
    else:
        raise InvalidRequest("--before-checkpoint takes a checkpoint size or 'latest'")
    settings, store = _open()
    before = table_size(store).to_dict()
    console = Console(stderr=True)
    with (
        AuditLedger.open(settings, store) as ledger,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=as_json,
        ) as bar,
    ):
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "writing" if stage == "write" else "deleting"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done)

        result = archive_ledger(
            ledger, out, before_checkpoint=size, keep=keep, batch=batch, progress=progress
        )
    if vacuum:
        vacuum_store(store)
    after = table_size(store).to_dict()
    store.close()
    data = {**result.to_dict(), "store_before": before, "store_after": after}
    if as_json:
        _print_json(data)
        return
    typer.echo(f"archived entries {result.first_seq}..{result.last_seq} ({result.count}) to {out}")
    typer.echo(f"sha256 {result.sha256}; recorded as ledger entry {result.record_seq}")
    if result.leftovers_deleted:
        typer.echo(f"also deleted {result.leftovers_deleted} entries left by an earlier run")
    typer.echo(_size_line("store before", before))
    typer.echo(_size_line("store after ", after))


@audit_app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every stored encrypted value with the newest key of LLMECO_ENCRYPTION_KEYS."""
    import importlib

    from llmeco.governance.crypto import Cipher, encrypted_columns, rotate

    # Importing a module registers its encrypted columns: the ledger's bodies and the apps'
    # conversations and feedback.
    for module in ("llmeco.governance.audit", "llmeco.apps.conversations"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)

    settings, store = _open()
    columns = encrypted_columns()
    done = rotate(store, Cipher.from_settings(settings), columns)
    store.close()
    names = ", ".join(f"{c.table.name}.{c.column}" for c in columns)
    typer.echo(f"re-encrypted {done} values with the newest key ({names})")


@audit_app.command("new-encryption-key")
def new_encryption_key() -> None:
    """Print a fresh random AES-256 key for LLMECO_ENCRYPTION_KEYS (put it first)."""
    from llmeco.governance.crypto import generate_key

    typer.echo(generate_key())
