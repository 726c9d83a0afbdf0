"""Readers for document formats: HTML (stdlib parser), docx (``python-docx``), pdf
(``pypdf``) and parquet (``pyarrow``).

HTML and docx come out as Markdown-style text (headings as ``#`` lines, blank lines between
blocks), the shape both data preparation (:mod:`llmeco.data.readers`) and knowledge bases
(:mod:`llmeco.rag.parse`) read; a PDF gives its text layer, with headings from its outline
(bookmarks) when it has one.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

from llmeco.errors import ConfigError


def pdf_text(path: Path) -> str:
    """Text of every page of a PDF (pages separated by blank lines), headings restored from
    its outline.

    A PDF's text layer has no heading markup, but most generated PDFs carry an outline
    (bookmarks). Each outline entry whose title is a line of the page it points to becomes a
    ``#`` heading line (one ``#`` per outline level), so the chunker sees the document's
    sections, as it does for HTML and .docx. Without an outline the text is unchanged.
    Scanned PDFs have no text layer and yield nothing; OCR is out of scope.
    """
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: cannot read PDF ({exc})") from exc
    pages = _mark_headings(pages, _outline(reader))
    return "\n\n".join(p.strip() for p in pages if p.strip())


def _outline(reader: Any) -> list[tuple[int, int, str]]:
    """(page index, level from 1, title) of each outline entry, in outline order; empty when
    the PDF has none or it cannot be read (headings are a bonus, never a reason to fail)."""
    out: list[tuple[int, int, str]] = []

    def walk(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)  # a nested list holds the previous entry's children
                continue
            page = reader.get_destination_page_number(item)
            title = " ".join(str(item.title or "").split())
            if page is not None and page >= 0 and title:
                out.append((page, level, title))

    try:
        walk(list(reader.outline), 1)
    except Exception:  # pypdf raises assorted errors on a damaged outline
        return []
    return out


def _mark_headings(pages: list[str], outline: list[tuple[int, int, str]]) -> list[str]:
    """``pages`` with each outline title's line (searched in order from the previous heading
    on its page) turned into a ``#`` heading line."""
    lines = [page.split("\n") for page in pages]
    cursor = dict.fromkeys(range(len(pages)), 0)
    for page, level, title in outline:
        if page >= len(lines):
            continue
        for i in range(cursor[page], len(lines[page])):
            if " ".join(lines[page][i].split()) == title:
                lines[page][i] = "#" * min(level, 6) + " " + title
                cursor[page] = i + 1
                break
    return ["\n".join(page_lines) for page_lines in lines]


def parquet_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a parquet file as dicts; needs ``pyarrow``.

    Raises:
        ConfigError: pyarrow is not installed, or the file is not parquet.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError(
            f"{path}: reading parquet needs pyarrow (`pip install pyarrow`), or convert the "
            "file to jsonl"
        ) from exc
    try:
        rows: list[dict[str, Any]] = pq.read_table(str(path)).to_pylist()
    except Exception as exc:  # pyarrow raises its own ArrowInvalid family
        raise ConfigError(f"{path}: cannot read parquet ({exc})") from exc
    return rows


class _HtmlToMarkdown(HTMLParser):
    """Visible text; ``<hN>`` become ``#``-headings, block elements paragraph breaks."""

    _SKIP: ClassVar[set[str]] = {"script", "style", "noscript", "template", "head", "nav", "footer"}
    _BLOCK: ClassVar[set[str]] = {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "section",
        "article",
        "pre",
        "blockquote",
        "table",
        "ul",
        "ol",
        "hr",
        "dt",
        "dd",
    }
    _HEADINGS: ClassVar[dict[str, int]] = {f"h{i}": i for i in range(1, 7)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._HEADINGS:
            self.parts.append("\n\n" + "#" * self._HEADINGS[tag] + " ")
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._HEADINGS or tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_markdown(html: str) -> str:
    """Visible text of an HTML page with headings as ``#`` lines and tidy paragraph breaks."""
    parser = _HtmlToMarkdown()
    parser.feed(html)
    parser.close()
    return _tidy("".join(parser.parts))


def docx_markdown(path: Path) -> str:
    """Paragraphs and tables of a .docx; "Title"/"Heading N" styles become ``#`` headings."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: not a valid .docx file ({exc})") from exc
    except Exception as exc:  # zipfile/lxml errors from a corrupt file
        raise ConfigError(f"{path}: not a valid .docx file ({exc})") from exc
    blocks: list[str] = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells = [" ".join(c.text.split()) for c in row.cells]
                if any(cells):
                    blocks.append(" | ".join(cells))
            continue
        text = " ".join(item.text.split())
        if not text:
            continue
        style = (item.style.name if item.style is not None else "") or ""
        level = _heading_level(style)
        blocks.append("#" * level + " " + text if level else text)
    return "\n\n".join(blocks)


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    if style.startswith("Heading "):
        tail = style.removeprefix("Heading ").strip()
        if tail.isdigit():
            return min(6, max(1, int(tail)))
    return 0


def _tidy(text: str) -> str:
    lines = [line.strip() for line in text.split("\n")]
    blocks: list[str] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(re.sub(r"\s+", " ", line))
        elif current:
            blocks.append(" ".join(current))
            current = []
    if current:
        blocks.append(" ".join(current))
    return "\n\n".join(b for b in blocks if b.strip("# "))
