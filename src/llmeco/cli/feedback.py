"""``llmeco feedback``: export what users said about answers as training data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

feedback_app = typer.Typer(
    help="User feedback on support answers → training data.", no_args_is_help=True
)


@feedback_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="sft (conversations) or preference (pairs).")
    ] = "sft",
) -> None:
    """Write rated answers as `llmeco train sft` data, or corrections as preference pairs."""
    from llmeco.apps.conversations import ConversationLog, dumps
    from llmeco.errors import InvalidRequest
    from llmeco.governance.crypto import Cipher
    from llmeco.settings import Settings
    from llmeco.store import Store

    if fmt not in ("sft", "preference"):
        raise InvalidRequest(f"--format must be sft or preference, not {fmt!r}", param="format")
    kind: Literal["sft", "preference"] = "sft" if fmt == "sft" else "preference"
    settings = Settings()
    store = Store.from_settings(settings)
    log = ConversationLog(store, Cipher.from_settings(settings))
    tmp = out.with_name(out.name + ".part")
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for record in log.export(kind):
            f.write(dumps(record) + "\n")
            count += 1
    tmp.replace(out)  # all or nothing: no half-written export
    Console().print(f"wrote {count} {fmt} records to {out}")
