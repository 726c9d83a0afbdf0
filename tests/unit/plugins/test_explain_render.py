"""The explanations plugin's HTML view escapes every caller and model string, and the
route picks HTML only when asked (``?format=html`` or a browser's ``Accept``)."""

from __future__ import annotations

from html.parser import HTMLParser

from llmeco_explain.protocol import (
    Alternative,
    Answer,
    AnswerToken,
    ExplainResponse,
    Target,
)
from llmeco_explain.render import render_html
from llmeco_explain.router import wants_html
from starlette.requests import Request

from llmeco.server.openai.shared import usage

EVIL = ['<script>alert("x")</script>', " & ", "<img src=x onerror=alert(1)>", "'\"", "ok"]
ALLOWED = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "q", "p", "b", "div",
           "span", "table", "tr", "td"}  # fmt: skip


class _Page(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.spans: list[tuple[str, str]] = []  # (title, text) of every highlighted span
        self._open: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "span" and ("class", "t") in attrs:
            self._open = [dict(attrs).get("title") or "", ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open is not None:
            self.spans.append((self._open[0], self._open[1]))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[1] += data


def _explanation(**extra: object) -> ExplainResponse:
    fields: dict[str, object] = {
        "id": "explain-1",
        "model": "<b>model</b>",
        "kind": "classification",
        "method": "integrated_gradients",
        "target": Target(kind="label", unit="probability", value=0.9, label='"><script>'),
        "tokens": EVIL,
        "scores": [0.5, -0.2, 0.0, 1.0, float("nan")],
        "segments": [0, 0, 0, 0, 0],
        "baseline_value": 0.1,
        "completeness_delta": 0.001,
        "label": '"><script>',
        "probabilities": {'"><script>': 0.9, "<i>x</i>": 0.1},
        "usage": usage(5, 0),
    }
    fields.update(extra)
    return ExplainResponse.model_validate(fields)


def test_every_string_is_escaped_and_shown_as_text() -> None:
    answer = Answer(
        text="</div><script>",
        finish_reason="stop",
        tokens=[
            AnswerToken(
                token="</div><script>",
                logprob=-0.1,
                top_logprobs=[Alternative(token='"><svg onload=x>', logprob=-2.0)],
            )
        ],
        logprob=-0.1,
    )
    html = render_html(_explanation(answer=answer))
    page = _Page(html)
    assert page.tags <= ALLOWED, page.tags - ALLOWED
    texts = [text for _, text in page.spans]
    assert texts[: len(EVIL)] == EVIL  # the input, token by token, as text
    assert texts[-1] == "</div><script>"  # the answer token
    assert '"><svg onload=x>' in page.spans[-1][0]  # alternatives only inside the title
    assert "&lt;b&gt;model&lt;/b&gt;" in html and "&lt;i&gt;x&lt;/i&gt;" in html
    assert "legend" in html and "raises the target" in html


def test_colours_follow_the_sign_and_size_of_scores() -> None:
    html = render_html(_explanation())
    assert "rgba(220,40,40,0.425)" in html  # +0.5 of a max 1.0: half-strength red
    assert "rgba(40,90,220,0.170)" in html  # -0.2: blue
    assert "rgba(220,40,40,0.850)" in html  # the largest score: full strength


def _request(query: str = "", accept: str | None = None) -> Request:
    headers = [] if accept is None else [(b"accept", accept.encode())]
    return Request({"type": "http", "query_string": query.encode(), "headers": headers})


def test_html_only_when_asked() -> None:
    assert wants_html(_request(), "html")
    assert not wants_html(_request(accept="text/html"), "json")
    assert wants_html(_request(accept="text/html,application/xhtml+xml,*/*;q=0.8"), None)
    assert not wants_html(_request(accept="application/json, text/html"), None)
    assert not wants_html(_request(accept="*/*"), None)
    assert not wants_html(_request(), None)
