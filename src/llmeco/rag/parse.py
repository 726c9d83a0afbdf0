"""Files → text with Markdown headings, the one shape the chunker reads.

Markdown and plain text are kept byte for byte (so chunk offsets point into the file itself);
HTML and .docx become Markdown-style text whose headings (``<h2>``, "Heading 2") turn into
``## …`` lines; PDFs give their text layer (no headings survive a PDF). Every error names the
file, so one bad file in a folder of hundreds is easy to find and the others still go in.
"""

from __future__ import annotations

import hashlib
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
            text = html_markdown(text)
    if not text.strip():
        raise ConfigError(f"{path}: no text to index (empty, or a scanned PDF without text)")
    return ParsedFile(name=name or path.name, source=str(path), text=text, content_hash=digest)
