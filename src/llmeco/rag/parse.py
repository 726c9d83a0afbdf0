"""Files → text with Markdown headings, the one shape the chunker reads.

Markdown and plain text are kept byte for byte (so chunk offsets point into the file itself);
HTML and .docx become Markdown-style text whose headings (``<h2>``, "Heading 2") turn into ``##
…`` lines; an HTML table becomes one line per row that names each cell by its column header
("Wednesday: Doors 08:00 to 20:00; Blood test room 08:15 to 12:30."), so a row read on its own
(a chunk, a sentence quoted as an answer) still says what its numbers are; PDFs give their text
layer (no headings survive a PDF). Every error names the file, so one bad file in a folder of
hundreds is easy to find and the others still go in.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmeco.data.documents import docx_markdown, html_markdown
from llmeco.errors import ConfigError, NotFound

MARKDOWN_SUFFIXES = {".md", ".markdown"}
TEXT_SUFFIXES = {".txt", ".text"}
HTML_SUFFIXES = {".html", ".htm"}
#: Every suffix a knowledge base reads.
SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}


@dataclass(frozen=True)
class ParsedFile:
    """A file read for indexing: its name in the KB, text, and hash of the raw bytes."""

    name: str
    source: str
    text: str
    content_hash: str


def expand_paths(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """(file, name in the KB) for each file named and each readable file under each folder.

    A file named directly keeps its file name; a file found in a folder is named by its path
    relative to that folder (``guides/setup.md``). Hidden files and unknown suffixes inside
    folders are skipped; a file named directly is always returned (reading it reports why it
    cannot be indexed).

    Raises:
        NotFound: a path does not exist.
    """
    out: list[tuple[Path, str]] = []
    for item in paths:
        if not item.exists():
            raise NotFound(f"{item}: no such file or folder")
        if item.is_dir():
            for path in sorted(item.rglob("*")):
                rel = path.relative_to(item)
                hidden = any(part.startswith(".") for part in rel.parts)
                if path.is_file() and not hidden and path.suffix.lower() in SUFFIXES:
                    out.append((path, rel.as_posix()))
        else:
            out.append((item, item.name))
    return out


def read_document(path: Path, name: str | None = None) -> ParsedFile:
    """Read one file into text with Markdown headings.

    Raises:
        ConfigError: unsupported suffix, undecodable text or a broken PDF/.docx; the message
            starts with the path.
    """
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(
            f"{path}: unsupported format {suffix or '(no suffix)'!r}; knowledge bases read "
            ".txt, .md, .html, .pdf and .docx"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if suffix == ".pdf":
        from llmeco.data.documents import pdf_text

        text = pdf_text(path)
    elif suffix == ".docx":
        text = docx_markdown(path)
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        text = text.replace("\r\n", "\n")
        if suffix in HTML_SUFFIXES:
            text = html_markdown(html_tables(text))
    if not text.strip():
        raise ConfigError(f"{path}: no text to index (empty, or a scanned PDF without text)")
    return ParsedFile(name=name or path.name, source=str(path), text=text, content_hash=digest)


_TABLE = re.compile(r"<table\b[^>]*>(.*?)</table\s*>", re.IGNORECASE | re.DOTALL)
_ROW = re.compile(r"<tr\b[^>]*>(.*?)</tr\s*>", re.IGNORECASE | re.DOTALL)
_CELL = re.compile(r"<(t[hd])\b[^>]*>(.*?)</t[hd]\s*>", re.IGNORECASE | re.DOTALL)
_CAPTION = re.compile(r"<caption\b[^>]*>(.*?)</caption\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def _cell_text(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).split())


def table_rows(table: str) -> list[str]:
    """The rows of one HTML table's inner markup as sentences: the first cell, then each
    other cell named by its column header (``"Wednesday: Doors 08:00; Phone 08:00."``); a
    table without a header row gives its cells joined by semicolons."""
    rows = [
        [(tag.lower(), _cell_text(body)) for tag, body in _CELL.findall(row)]
        for row in _ROW.findall(table)
    ]
    rows = [r for r in rows if any(text for _, text in r)]
    if not rows:
        return []
    header: list[str] = []
    if all(tag == "th" for tag, _ in rows[0]):
        header = [text for _, text in rows[0]]
        rows = rows[1:]
    return [labelled_row(header, [text for _, text in row]) for row in rows]


def labelled_row(header: list[str], cells: list[str]) -> str:
    """One table row as a sentence: its first cell, then each other cell named by its column
    header (``"Wednesday: Doors 08:00; Phone 08:00."``); without a header (or with one cell)
    the cells joined by semicolons."""
    if header and len(cells) > 1:
        named = [
            f"{header[i]} {cell}" if i < len(header) and header[i] else cell
            for i, cell in enumerate(cells[1:], 1)
            if cell
        ]
        line = f"{cells[0]}: {'; '.join(named)}"
    else:
        line = "; ".join(c for c in cells if c)
    return line if line.endswith((".", "!", "?")) else line + "."


_MD_ROW = re.compile(r"^\s*\|(.*)\|\s*$")
_MD_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")


def markdown_tables(text: str) -> str:
    """``text`` with each Markdown pipe table (a header row, a ``|---|`` rule, body rows)
    rewritten as one line per body row named by the header (:func:`labelled_row`), so a row
    read on its own says what its numbers are; other lines are kept as they are."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        head = _MD_ROW.match(lines[i])
        if head and i + 1 < len(lines) and _MD_RULE.match(lines[i + 1]):
            header = [c.strip() for c in head.group(1).split("|")]
            i += 2
            while i < len(lines) and (row := _MD_ROW.match(lines[i])):
                out.append(labelled_row(header, [c.strip() for c in row.group(1).split("|")]))
                i += 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def html_tables(page: str) -> str:
    """``page`` with each ``<table>`` replaced by one paragraph per row (:func:`table_rows`),
    after the table's caption when it has one."""

    def rendered(match: re.Match[str]) -> str:
        inner = match.group(1)
        caption = _CAPTION.search(inner)
        lines = [_cell_text(caption.group(1))] if caption else []
        lines += table_rows(inner)
        return "".join(f"<p>{html.escape(line)}</p>\n" for line in lines)

    return _TABLE.sub(rendered, page)
