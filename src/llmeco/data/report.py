"""``llmeco data report``: a prepared dataset's manifest as an HTML page with PNG charts.

Charts: the filter funnel (documents left after each step), document lengths before and
after (the manifest's histograms), and languages before and after. The page also lists, per
step, what it dropped (documents, lines, characters, reasons) and its examples. A dataset
from the plain ``prepare`` (no corpus steps) gets the funnel from its drop counts only.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from llmeco.data.pipeline import read_manifest


def _funnel(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    if "funnel" in manifest:
        return list(manifest["funnel"])
    counts = manifest["counts"]
    left = counts["records_read"]
    rows = [{"step": "read", "documents": left}]
    for reason, n in counts["dropped"].items():
        left -= n
        rows.append({"step": reason, "documents": left})
    return rows


def _charts(manifest: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    funnel = _funnel(manifest)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(funnel) + 1.2))
    labels = [row["step"] for row in funnel][::-1]
    values = [row["documents"] for row in funnel][::-1]
    bars = ax.barh(labels, values, color="#4C78A8")
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=8)
    ax.set_xlabel("documents left")
    ax.set_title("Filter funnel")
    ax.set_xlim(0, max(values or [1]) * 1.15)
    fig.tight_layout()
    fig.savefig(out / "funnel.png", dpi=110)
    plt.close(fig)
    names.append("funnel.png")
    lengths = manifest.get("lengths")
    if lengths:
        bins = lengths["bins"]
        ticks = [f"≤{b:,}" for b in bins] + [f">{bins[-1]:,}"]
        fig, ax = plt.subplots(figsize=(9, 3.6))
        x = range(len(ticks))
        ax.bar([i - 0.2 for i in x], lengths["before"], width=0.4, label="before")
        ax.bar([i + 0.2 for i in x], lengths["after"], width=0.4, label="after")
        ax.set_xticks(list(x), ticks, rotation=40, fontsize=8)
        ax.set_xlabel("characters per document")
        ax.set_ylabel("documents")
        ax.set_title("Document lengths")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "lengths.png", dpi=110)
        plt.close(fig)
        names.append("lengths.png")
    languages = manifest.get("languages")
    if languages and languages["before"]:
        top = sorted(languages["before"], key=lambda k: -languages["before"][k])[:15]
        fig, ax = plt.subplots(figsize=(8, 3.4))
        x = range(len(top))
        ax.bar(
            [i - 0.2 for i in x], [languages["before"][k] for k in top], width=0.4, label="before"
        )
        ax.bar(
            [i + 0.2 for i in x],
            [languages["after"].get(k, 0) for k in top],
            width=0.4,
            label="after",
        )
        ax.set_xticks(list(x), top)
        ax.set_ylabel("documents")
        ax.set_yscale("log")
        ax.set_title("Languages")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "languages.png", dpi=110)
        plt.close(fig)
        names.append("languages.png")
    return names


def _steps_html(manifest: dict[str, Any]) -> str:
    parts = []
    for name, step in manifest.get("steps", {}).items():
        reasons = ", ".join(f"{html.escape(r)}: {n:,}" for r, n in step["reasons"].items())
        examples = "".join(
            f"<li><code>{html.escape(str(e['id']))}</code> ({html.escape(e['reason'])}): "
            f"<pre>{html.escape(e['text'])}</pre></li>"
            for e in step["examples"]
        )
        parts.append(
            f"<h3>{html.escape(name)}</h3><p>{step['documents_dropped']:,} documents, "
            f"{step['lines_dropped']:,} lines, {step['chars_dropped']:,} characters dropped"
            f"</p><p>{reasons}</p><ul>{examples}</ul>"
        )
    return "\n".join(parts)


def write_report(dataset: Path, out: Path) -> Path:
    """Write ``report.html`` and its PNGs to ``out``; return the page's path.

    Raises:
        ConfigError: ``dataset`` is not a prepared dataset.
    """
    manifest = read_manifest(dataset)
    out.mkdir(parents=True, exist_ok=True)
    images = "".join(f'<p><img src="{name}" alt="{name}"></p>' for name in _charts(manifest, out))
    counts = manifest["counts"]
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>"
        for k, v in counts.items()
        if isinstance(v, int)
    )
    duplicates = manifest.get("duplicates", [])
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Dataset report: {html.escape(dataset.name)}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}
pre{{white-space:pre-wrap;background:#f4f4f4;padding:.4rem;font-size:.8rem}}
td{{padding:0 1rem 0 0}}</style></head><body>
<h1>Dataset report: {html.escape(dataset.name)}</h1>
<table>{rows}</table>
{images}
<h2>Steps</h2>
{_steps_html(manifest)}
<h2>Duplicates</h2><p>{len(duplicates):,} documents removed as duplicates (the manifest
names the document each one duplicates).</p>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
