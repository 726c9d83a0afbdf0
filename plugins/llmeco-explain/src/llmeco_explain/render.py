"""An explanation as one self-contained HTML page: the input with each token highlighted.

Every piece of text on the page — tokens, labels, the answer, the model name — comes from a
caller or a model, so all of it goes through :func:`html.escape` (quotes included, since
some of it lands in ``title`` attributes). The page has inline CSS only, no scripts and no
external resources, so it renders the same anywhere and needs no Content-Security-Policy
exceptions.
"""

from __future__ import annotations

import math
from html import escape

from llmeco_explain.protocol import ExplainResponse

_CSS = """
body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:1.6rem}
.text{white-space:pre-wrap;line-height:2;font-size:1.05rem;border:1px solid #ddd;padding:.8rem;
border-radius:6px}
.t{border-radius:3px;padding:.1rem 0}
.legend{display:flex;gap:.2rem;align-items:center;font-size:.85rem;margin:.6rem 0}
.legend span.sw{display:inline-block;width:1.6rem;height:1rem;border:1px solid #ccc}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.2rem .6rem;text-align:left;
border-bottom:1px solid #eee}.meta{color:#555;font-size:.9rem}
"""


def _colour(score: float, scale: float) -> str:
    """Red for tokens that raise the target, blue for tokens that lower it; alpha ∝ |score|."""
    if scale <= 0 or not math.isfinite(score):
        return "transparent"
    alpha = min(1.0, abs(score) / scale) * 0.85
    rgb = "220,40,40" if score > 0 else "40,90,220"
    return f"rgba({rgb},{alpha:.3f})"


def _legend(scale: float) -> str:
    steps = [-1.0, -0.5, 0.0, 0.5, 1.0]
    swatches = "".join(
        f'<span class="sw" style="background:{_colour(s * scale, scale)}"></span>' for s in steps
    )
    return (
        f'<div class="legend">lowers the target <b>{escape(f"{-scale:.3g}")}</b>'
        f"{swatches}<b>{escape(f'{scale:.3g}')}</b> raises the target</div>"
    )


def _tokens(pieces: list[str], scores: list[float], segments: list[int], scale: float) -> str:
    out, current = [], None
    for piece, score, segment in zip(pieces, scores, segments, strict=True):
        if current is not None and segment != current:
            out.append('</div><div class="text">')
        current = segment
        out.append(
            f'<span class="t" style="background:{_colour(score, scale)}" '
            f'title="{escape(f"{score:+.4g}", quote=True)}">{escape(piece, quote=True)}</span>'
        )
    return '<div class="text">' + "".join(out) + "</div>"


def render_html(explanation: ExplainResponse) -> str:
    """The highlighted-text page for ``explanation`` (a complete HTML document)."""
    e = explanation
    scale = max((abs(s) for s in e.scores if math.isfinite(s)), default=0.0)
    target = e.target
    heading = (
        f"Why the model chose <q>{escape(target.label)}</q>"
        if target.label is not None
        else "Why the model gave this answer"
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Explanation</title><style>",
        _CSS,
        "</style></head><body>",
        f"<h1>{heading}</h1>",
        f"<p class='meta'>model <b>{escape(e.model)}</b> · method <b>{escape(e.method)}</b> · "
        f"target {escape(target.kind)} = {escape(f'{target.value:.4g}')} ({escape(target.unit)})",
    ]
    if e.completeness_delta is not None and e.baseline_value is not None:
        parts.append(
            f" · baseline {escape(f'{e.baseline_value:.4g}')}, completeness gap "
            f"{escape(f'{e.completeness_delta:.3g}')}"
        )
    parts.append("</p>")
    parts.append(_legend(scale))
    parts.append(_tokens(e.tokens, e.scores, e.segments, scale))
    if e.probabilities:
        rows = "".join(
            f"<tr><td>{escape(name)}</td><td>{p:.4f}</td></tr>"
            for name, p in sorted(e.probabilities.items(), key=lambda kv: -kv[1])
        )
        parts.append(f"<h2>Label probabilities</h2><table>{rows}</table>")
    if e.answer is not None:
        parts.append("<h2>Answer (shaded by the model's confidence in each token)</h2>")
        spans = []
        for tok in e.answer.tokens:
            confidence = math.exp(max(tok.logprob, -50.0))
            alternatives = ", ".join(f"{a.token!r}: {a.logprob:.3f}" for a in tok.top_logprobs)
            title = f"logprob {tok.logprob:.3f}" + (f" | {alternatives}" if alternatives else "")
            spans.append(
                f'<span class="t" style="background:rgba(40,160,80,{0.85 * confidence:.3f})" '
                f'title="{escape(title, quote=True)}">{escape(tok.token, quote=True)}</span>'
            )
        parts.append('<div class="text">' + "".join(spans) + "</div>")
    parts.append("</body></html>")
    return "".join(parts)
