"""Readers for document formats: docx (stdlib zip + XML), pdf (``pypdf``) and parquet
(``pyarrow`` when it is installed; it is not a dependency of llmeco, being ~40 MB).

Each returns the document's text; :mod:`llmeco.data.readers` splits it into paragraphs.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from llmeco.errors import ConfigError

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def docx_text(path: Path) -> str:
    """Paragraph texts of a .docx, separated by blank lines (tables included, images not)."""
    try:
        with zipfile.ZipFile(path) as archive:
            xml = archive.read("word/document.xml")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ConfigError(f"{path}: not a valid .docx file ({exc})") from exc
    root = ElementTree.fromstring(xml)
    paragraphs = []
    for para in root.iter(f"{_W}p"):
        parts = []
        for node in para.iter():
            if node.tag == f"{_W}t" and node.text:
                parts.append(node.text)
            elif node.tag in (f"{_W}tab",):
                parts.append("\t")
            elif node.tag in (f"{_W}br", f"{_W}cr"):
                parts.append("\n")
        paragraphs.append("".join(parts))
    return "\n\n".join(p for p in paragraphs if p.strip())


def pdf_text(path: Path) -> str:
    """Text of every page of a PDF (pages separated by blank lines).

    Scanned PDFs have no text layer and yield nothing; OCR is out of scope.
    """
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: cannot read PDF ({exc})") from exc
    return "\n\n".join(p.strip() for p in pages if p.strip())


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
