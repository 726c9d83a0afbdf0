"""``llmeco top``: a live terminal view of a running server, from ``/metrics`` and the admin
API — requests/s, running/waiting, KV use, TTFT/ITL percentiles, tokens/s per model, and the
keys that used the most tokens today (with an admin key)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from llmeco.errors import ServiceUnavailable
from llmeco.observability.live import KeyRow, Scrape, TopView, build_view

if TYPE_CHECKING:
    import httpx
    from rich.console import RenderableType


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms"


def _fetch(client: httpx.Client, url: str, key: str) -> tuple[Scrape, list[KeyRow] | None, str]:
    """One scrape and the usage list (None with a note when the key cannot read it)."""
    import httpx

    try:
        r = client.get(url + "/metrics")
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"cannot scrape {url}/metrics: {exc}") from exc
    scrape = Scrape.parse(r.text, time.monotonic())
    if not key:
        return scrape, None, "top keys: set LLMECO_API_KEY to an admin key"
    u = client.get(url + "/admin/usage", headers={"Authorization": f"Bearer {key}"})
    if u.status_code != 200:
        return scrape, None, f"top keys: /admin/usage answered {u.status_code}"
    rows = [
        KeyRow(k["key_id"], k["name"], k["total_tokens"], k["requests"], k["remaining_tokens"])
        for k in u.json()["data"]
    ]
    return scrape, rows, ""


def render(view: TopView, url: str) -> RenderableType:
    """The rich renderable of one frame."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    ready = {True: "[green]ready[/]", False: "[red]NOT READY[/]", None: "?"}[view.ready]
    rss = f"{view.rss_bytes / 2**20:.0f} MiB" if view.rss_bytes is not None else "–"
    head = Text.from_markup(
        f"[bold]llmeco top[/] {url}  {ready}  "
        f"req/s [bold]{view.requests_per_s:.2f}[/]  5xx/s {view.errors_per_s:.2f}  "
        f"429/s {view.rejected_per_s:.2f}  rss {rss}"
    )
    models = Table(title="models", expand=True)
    for col in ("model", "running", "waiting", "KV use", "tok/s in", "tok/s out",
                "TTFT p50", "TTFT p95", "ITL p50", "ITL p95"):  # fmt: skip
        models.add_column(col, justify="left" if col == "model" else "right")
    for m in view.models:
        models.add_row(
            m.model,
            f"{m.running:.0f}",
            f"{m.waiting:.0f}",
            f"{m.kv_usage:.0%}",
            f"{m.tokens_in_per_s:.1f}",
            f"{m.tokens_out_per_s:.1f}",
            _ms(m.ttft_p50),
            _ms(m.ttft_p95),
            _ms(m.itl_p50),
            _ms(m.itl_p95),
        )
    parts: list[RenderableType] = [head, models]
    if view.keys is not None:
        keys = Table(title="top keys by tokens today", expand=True)
        for col in ("key", "name", "tokens", "requests", "budget left"):
            keys.add_column(col, justify="left" if col in ("key", "name") else "right")
        for k in view.keys:
            left = "–" if k.remaining_tokens is None else str(k.remaining_tokens)
            keys.add_row(k.key_id, k.name, str(k.total_tokens), str(k.requests), left)
        parts.append(keys)
    else:
        parts.append(Text(view.keys_note, style="dim"))
    return Group(*parts)


def top(
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8000",
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between refreshes.")] = 2.0,
    iterations: Annotated[
        int, typer.Option(min=0, help="Stop after this many refreshes (0: until Ctrl-C).")
    ] = 0,
) -> None:
    """Live view of a running server: traffic, queue, KV cache, latency, tokens, top keys.

    Reads /metrics (public) every --interval seconds; with LLMECO_API_KEY set to an admin
    key it also lists the keys that used the most tokens today (/admin/usage).
    """
    import httpx
    from rich.console import Console
    from rich.live import Live

    from llmeco.settings import Settings

    key = Settings().api_key.get_secret_value()
    url = url.rstrip("/")
    console = Console()
    with httpx.Client(timeout=10) as client:
        before, usage, note = _fetch(client, url, key)
        view = build_view(before, None, usage, note)
        done = 0
        with Live(render(view, url), console=console, auto_refresh=False) as live:
            while iterations == 0 or done < iterations:
                time.sleep(interval)
                now, usage, note = _fetch(client, url, key)
                view = build_view(now, before, usage, note)
                live.update(render(view, url), refresh=True)
                before = now
                done += 1
