"""``prepare``: files → cleaned, deduplicated, redacted, split dataset with a manifest.

Output (written to a temporary sibling folder and renamed into place, so a crash never
leaves a half-written dataset)::

    DIR/train.jsonl        one record per line (``text`` or ``messages``, plus ``source``)
    DIR/validation.jsonl
    DIR/manifest.json      counts, bytes and sha256 of every file, the options used
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmeco import __version__
from llmeco.data.clean import normalize_text, quality_problem, redact_pii
from llmeco.data.dedup import NearDuplicateFilter, content_hash
from llmeco.data.readers import Record, expand_inputs, read_file
from llmeco.data.shards import iter_jsonl
from llmeco.data.split import is_validation
from llmeco.errors import ConfigError, LlmecoError

MANIFEST_FORMAT = "llmeco-dataset/1"


@dataclass(frozen=True)
class PrepareOptions:
    """What ``prepare`` does; recorded in the manifest."""

    validation_fraction: float = 0.1
    seed: int = 0
    min_chars: int = 20
    min_letter_ratio: float = 0.5
    redact: bool = True
    near_dedup: bool = True
    near_threshold: float = 0.8
    skip_bad_files: bool = False


@dataclass
class PrepareReport:
    """Counts of what happened, per stage; becomes part of the manifest."""

    files: int = 0
    read: int = 0
    kept_train: int = 0
    kept_validation: int = 0
    text_records: int = 0
    chat_records: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    redacted: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def _clean_record(
    record: Record, options: PrepareOptions, report: PrepareReport
) -> tuple[Record | None, str]:
    """The cleaned record and its content key, or None (with the drop reason counted)."""
    if "messages" in record:
        messages = []
        for msg in record["messages"]:
            content = normalize_text(msg["content"])
            if options.redact:
                content, counts = redact_pii(content)
                report.redacted.update(counts)
            messages.append({**msg, "content": content})
        replies = (m for m in messages if m["role"] == "assistant")
        if not any(m["content"] or m.get("tool_calls") for m in replies):
            report.dropped["no_assistant_reply"] += 1
            return None, ""
        key = "\n".join(_turn_key(m) for m in messages)
        chat: Record = {"messages": messages, "source": record.get("source", "")}
        if record.get("tools"):
            chat["tools"] = record["tools"]
            key += "\ntools: " + json.dumps(record["tools"], sort_keys=True)
        return chat, key
    text = normalize_text(record["text"])
    # Labelled examples (classification) are short by nature: only the letter rule applies.
    min_chars = 1 if "label" in record else options.min_chars
    problem = quality_problem(text, min_chars, options.min_letter_ratio)
    if problem:
        report.dropped[problem] += 1
        return None, ""
    if options.redact:
        text, counts = redact_pii(text)
        report.redacted.update(counts)
    cleaned: Record = {"text": text, "source": record.get("source", "")}
    if "label" in record:
        cleaned["label"] = record["label"]
    return cleaned, text


def _turn_key(message: Record) -> str:
    """One message as text for duplicate detection (tool calls included)."""
    key = f"{message['role']}: {message['content']}"
    if message.get("tool_calls"):
        key += " " + json.dumps(message["tool_calls"], sort_keys=True)
    return key


def prepare_dataset(
    inputs: list[Path],
    out: Path,
    options: PrepareOptions,
    *,
    overwrite: bool = False,
    on_file: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Build the dataset in ``out`` and return its manifest.

    Raises:
        ConfigError: ``out`` exists (without ``overwrite``), bad options, or a file that
            cannot be read (unless ``skip_bad_files``; then it is listed in the manifest).
        NotFound: an input path does not exist.
    """
    if not 0 <= options.validation_fraction < 1:
        raise ConfigError("--validation must be in [0, 1)")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty; pass --overwrite to replace it")
    out_dir = out.resolve()
    # An --out inside an input folder must not feed a previous run's output back in.
    files = [f for f in expand_inputs(inputs) if not f.resolve().is_relative_to(out_dir)]
    if not files:
        raise ConfigError("no readable files among the inputs")
    report = PrepareReport(files=len(files))
    seen: set[str] = set()
    near = NearDuplicateFilter(threshold=options.near_threshold) if options.near_dedup else None
    train: list[Record] = []
    validation: list[Record] = []
    for path in files:
        if on_file is not None:
            on_file(path)
        try:
            records = read_file(path)
        except LlmecoError as exc:
            if not options.skip_bad_files:
                raise
            report.errors.append(exc.message)
            continue
        for record in records:
            report.read += 1
            cleaned, key = _clean_record(record, options, report)
            if cleaned is None:
                continue
            digest = content_hash(key)
            if digest in seen:
                report.dropped["exact_duplicate"] += 1
                continue
            seen.add(digest)
            if near is not None and near.seen(key):
                report.dropped["near_duplicate"] += 1
                continue
            kind = "chat_records" if "messages" in cleaned else "text_records"
            setattr(report, kind, getattr(report, kind) + 1)
            target = (
                validation
                if is_validation(digest, options.validation_fraction, options.seed)
                else train
            )
            target.append(cleaned)
    report.kept_train, report.kept_validation = len(train), len(validation)
    if not train:
        raise ConfigError("nothing left for the train split after cleaning; see the counts")
    return _write_atomically(
        out, {"train.jsonl": train, "validation.jsonl": validation}, options, report, files
    )


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_atomically(
    out: Path,
    splits: dict[str, list[Record]],
    options: PrepareOptions,
    report: PrepareReport,
    inputs: list[Path],
) -> dict[str, Any]:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files: dict[str, Any] = {}
        for name, records in splits.items():
            path = tmp / name
            with path.open("w", encoding="utf-8") as f:
                for record in records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            files[name] = {
                "records": len(records),
                "bytes": path.stat().st_size,
                "sha256": file_sha256(path),
            }
        manifest = {
            "format": MANIFEST_FORMAT,
            "llmeco_version": __version__,
            "options": asdict(options),
            "inputs": [str(p) for p in inputs],
            "counts": {
                "files": report.files,
                "records_read": report.read,
                "train": report.kept_train,
                "validation": report.kept_validation,
                "text": report.text_records,
                "chat": report.chat_records,
                "dropped": dict(sorted(report.dropped.items())),
                "redacted": dict(sorted(report.redacted.items())),
            },
            "errors": report.errors,
            "files": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(dataset: Path) -> dict[str, Any]:
    """The manifest of a prepared dataset folder.

    Raises:
        ConfigError: the folder has no ``manifest.json`` (not made by ``llmeco data prepare``).
    """
    path = dataset / "manifest.json"
    if not path.is_file():
        raise ConfigError(
            f"{dataset} is not a prepared dataset (no manifest.json); run `llmeco data prepare`"
        )
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def load_records(dataset: Path, split: str) -> list[Record]:
    """Records of one split (``train`` / ``validation``) of a prepared dataset."""
    manifest = read_manifest(dataset)
    if manifest.get("layout") == "shards":  # a corpus prepared in shards (corpus_run)
        names = manifest.get("splits", {}).get(split, [])
        return [record for name in names for record in iter_jsonl(dataset / name)]
    path = dataset / f"{split}.jsonl"
    if not path.is_file():
        raise ConfigError(f"{dataset} has no {split}.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
