"""Readers: raw files (txt, md, html, jsonl, csv, pdf, docx, parquet) → records.

A *record* is a plain dict, one of two shapes::

    {"text": "...", "source": "file.txt"}                       # prose for pretraining
    {"text": "...", "label": "billing", "source": ...}           # a labelled example
    {"messages": [{"role": ..., "content": ...}, ...], "source": ...}  # a conversation
    {"messages": [...], "tools": [...], "source": ...}              # a conversation with tools

A conversation with tools is OpenAI's fine-tuning format: ``tools`` (function definitions)
next to ``messages``, assistant messages with ``tool_calls`` (their content may be null) and
``tool`` messages answering them by ``tool_call_id``.

Chat data is recognised in three common layouts and normalised to ``messages``:
OpenAI-style ``messages``, ShareGPT ``conversations`` (``from``/``value``) and Alpaca
(``instruction``/``input``/``output``). Every error names the file (and line) it is about,
so a bad file in a folder of thousands is easy to find.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from llmeco.data import documents
from llmeco.errors import ConfigError, NotFound
from llmeco.plugins import get_registry

Record = dict[str, Any]

#: Suffixes of the built-in readers, and those we recognise but cannot read (a clear error
#: instead of "unknown file"); plugins add more (:func:`supported_suffixes`).
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | {".jsonl", ".csv", ".pdf", ".docx", ".parquet"}
UNSUPPORTED = {".doc", ".xlsx", ".json", ".odt", ".rtf"}

_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "system": "system",
}
_ROLES = {"system", "user", "assistant", "tool"}


def expand_inputs(inputs: Iterable[Path]) -> list[Path]:
    """Files named directly plus every readable file under named folders, sorted.

    Hidden files and files with suffixes we do not know are skipped inside folders, but a
    file named directly with an unknown suffix is an error (the user asked for it).

    Raises:
        NotFound: an input does not exist.
    """
    files: list[Path] = []
    for item in inputs:
        if not item.exists():
            raise NotFound(f"{item}: no such file or folder")
        if item.is_dir():
            for path in sorted(item.rglob("*")):
                known = path.suffix.lower() in supported_suffixes() | UNSUPPORTED
                if path.is_file() and not path.name.startswith(".") and known:
                    files.append(path)
        else:
            files.append(item)
    return files


def read_file(path: Path) -> list[Record]:
    """All records of one file, read by the reader registered for its suffix.

    The built-in readers (:func:`read_text`, :func:`read_html` …) register through the
    plugin hooks like any other (:mod:`llmeco.data.plugin`), so a plugin can add a format
    or replace one.

    Raises:
        ConfigError: unsupported format, unreadable encoding or a malformed row; the
            message starts with the file name.
    """
    suffix = path.suffix.lower()
    reader = get_registry().readers().get(suffix)
    if reader is None or suffix in UNSUPPORTED:
        known = ", ".join(sorted(supported_suffixes()))
        raise ConfigError(
            f"{path}: unsupported format {suffix or '(no suffix)'!r}; llmeco reads {known} "
            "(convert it to one of these, or install a plugin that reads it)"
        )
    return reader.read(path)


def supported_suffixes() -> set[str]:
    """Every suffix a registered reader handles (built-ins and plugins)."""
    return set(get_registry().readers())


def _utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def read_text(path: Path) -> list[Record]:
    """Plain text and Markdown: one record per blank-line separated block."""
    return [_text(p, path) for p in split_paragraphs(_utf8(path))]


def read_html(path: Path) -> list[Record]:
    """HTML, converted to Markdown first: one record per block."""
    return [_text(p, path) for p in split_paragraphs(documents.html_markdown(_utf8(path)))]


def read_pdf(path: Path) -> list[Record]:
    """A PDF's text layer: one record per block."""
    return [_text(p, path) for p in split_paragraphs(documents.pdf_text(path))]


def read_docx(path: Path) -> list[Record]:
    """A Word document as Markdown: one record per block."""
    return [_text(p, path) for p in split_paragraphs(documents.docx_markdown(path))]


def read_parquet(path: Path) -> list[Record]:
    """A Parquet table: one record per row (the same layouts as JSONL)."""
    return _records(documents.parquet_rows(path), path, first_row=1)


def read_jsonl(path: Path) -> list[Record]:
    """JSON Lines: one record per object (text, labelled, or chat layouts)."""
    return list(_read_jsonl(_utf8(path), path))


def read_csv(path: Path) -> list[Record]:
    """CSV with a header row (``text``[, ``label``] or chat columns)."""
    return list(_read_csv(_utf8(path), path))


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks: the unit we clean, dedupe and split."""
    blocks = [b.strip() for b in text.replace("\r\n", "\n").split("\n\n")]
    return [b for b in blocks if b]


def _text(text: str, path: Path) -> Record:
    return {"text": text, "source": path.name}


def to_record(obj: Any, where: str) -> Record:
    """One JSON object → a text or chat record.

    Raises:
        ConfigError: the object has none of the known layouts; ``where`` names the place.
    """
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "messages" in obj:
        record: Record = {"messages": _messages(obj["messages"], where)}
        if obj.get("tools") is not None:
            record["tools"] = _tools(obj["tools"], where)
        return record
    if "conversations" in obj:
        turns = obj["conversations"]
        if not isinstance(turns, list):
            raise ConfigError(f"{where}: 'conversations' must be a list")
        msgs = []
        for turn in turns:
            if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
                raise ConfigError(f"{where}: ShareGPT turns need 'from' and 'value'")
            role = _SHAREGPT_ROLES.get(str(turn["from"]).lower())
            if role is None:
                raise ConfigError(f"{where}: unknown ShareGPT speaker {turn['from']!r}")
            msgs.append({"role": role, "content": str(turn["value"])})
        return {"messages": _messages(msgs, where)}
    if "instruction" in obj and "output" in obj:
        prompt = str(obj["instruction"])
        if obj.get("input"):
            prompt += "\n\n" + str(obj["input"])
        msgs = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": str(obj["output"])},
        ]
        return {"messages": msgs}
    for key in ("text", "content"):
        if isinstance(obj.get(key), str):
            record = {"text": obj[key]}
            label = obj.get("label")
            if isinstance(label, str | int | bool) and str(label).strip():
                record["label"] = str(label).strip()  # a labelled example (classification)
            return record
    raise ConfigError(
        f"{where}: no 'text', 'messages', 'conversations' or 'instruction'/'output' field "
        f"(keys: {', '.join(sorted(obj)) or 'none'})"
    )


def _messages(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: 'messages' must be a non-empty list")
    out = []
    for msg in value:
        if not isinstance(msg, dict) or msg.get("role") not in _ROLES:
            raise ConfigError(
                f"{where}: each message needs a role of system, user, assistant or tool"
            )
        message: dict[str, Any] = {
            "role": str(msg["role"]),
            "content": str(msg.get("content") or ""),
        }
        if msg.get("tool_calls"):
            if message["role"] != "assistant":
                raise ConfigError(f"{where}: only assistant messages may have tool_calls")
            message["tool_calls"] = _tool_calls(msg["tool_calls"], where)
        if message["role"] == "tool":
            message["tool_call_id"] = str(msg.get("tool_call_id") or "")
        out.append(message)
    return out


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    """An assistant's ``tool_calls``: each ``{"id", "type", "function": {"name", "arguments"}}``
    with the arguments kept as a JSON string."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: 'tool_calls' must be a list")
    calls = []
    for n, call in enumerate(value):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ConfigError(f"{where}: tool_calls[{n}] needs function.name")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        function_out = {"name": function["name"], "arguments": arguments}
        calls.append(
            {"id": str(call.get("id") or f"call_{n}"), "type": "function", "function": function_out}
        )
    return calls


def _tools(value: Any, where: str) -> list[dict[str, Any]]:
    """A record's ``tools``: OpenAI function definitions, each with a name."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"{where}: 'tools' must be a list of tool definitions")
    for n, tool in enumerate(value):
        function = tool.get("function", tool)
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ConfigError(f"{where}: tools[{n}] needs function.name")
    return [dict(t) for t in value]


def _read_jsonl(raw: str, path: Path) -> Iterator[Record]:
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: invalid JSON ({exc.msg})") from exc
        record = to_record(obj, where)
        record["source"] = path.name
        yield record


def _read_csv(raw: str, path: Path) -> Iterator[Record]:
    reader = csv.DictReader(raw.splitlines())
    if not reader.fieldnames:
        raise ConfigError(f"{path}: empty CSV (no header row)")
    yield from _records(
        ({k: v for k, v in row.items() if k is not None} for row in reader), path, first_row=2
    )


def _records(rows: Iterable[dict[str, Any]], path: Path, first_row: int) -> list[Record]:
    """Table rows → records; errors name the file and the row number."""
    out = []
    for number, row in enumerate(rows, start=first_row):
        record = to_record(row, f"{path}:{number}")
        record["source"] = path.name
        out.append(record)
    return out
