"""The built-in file readers, registered through the same hook as a plugin's."""

from __future__ import annotations

from llmeco.data import readers
from llmeco.plugins import ReaderSpec, hookimpl


@hookimpl
def register_readers() -> list[ReaderSpec]:
    """Text/Markdown, HTML, JSONL, CSV, PDF, Word and Parquet."""
    return [
        ReaderSpec(
            "text",
            tuple(sorted(readers.TEXT_SUFFIXES)),
            readers.read_text,
            "plain text and Markdown, one record per paragraph",
        ),
        ReaderSpec(
            "html",
            tuple(sorted(readers.HTML_SUFFIXES)),
            readers.read_html,
            "HTML converted to Markdown, one record per block",
        ),
        ReaderSpec(
            "jsonl", (".jsonl",), readers.read_jsonl, "JSON Lines: text, labelled or chat records"
        ),
        ReaderSpec("csv", (".csv",), readers.read_csv, "CSV with a header row"),
        ReaderSpec("pdf", (".pdf",), readers.read_pdf, "a PDF's text layer"),
        ReaderSpec("docx", (".docx",), readers.read_docx, "Word documents"),
        ReaderSpec("parquet", (".parquet",), readers.read_parquet, "Parquet tables, one row each"),
    ]
