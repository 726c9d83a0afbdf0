"""`prepare` on a corpus in shards: line dedup across documents, exact and near dedup with
the ids they duplicate, language id, per-step counts, resuming."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from llmeco.data.corpus_run import prepare_corpus
from llmeco.data.pipeline import load_records
from llmeco.data.shards import iter_jsonl
from llmeco.data.steps import CorpusConfig, dedupe_lines_in_document, load_corpus_config
from llmeco.data.synthetic_web import WebCorpus
from llmeco.errors import ConfigError

FOOTER = "Subscribe to our newsletter for weekly updates and local stories."
#: Only the dedup steps (the document filters have tests of their own).
DEDUP_ONLY = {
    "language": {"enabled": False},
    "gopher_repetition": {"enabled": False},
    "gopher_quality": {"enabled": False},
    "c4": {"enabled": False},
    "fineweb": {"enabled": False},
    "redact": False,
}


def _article(rng_seed: int) -> str:
    corpus = WebCorpus(seed=rng_seed, sites=1)
    return "\n".join(corpus.paragraph(3, 5) for _ in range(5))


def _write(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    return path


def _outputs(out: Path) -> list[dict[str, Any]]:
    return [r for p in sorted(out.glob("*.jsonl.zst")) for r in iter_jsonl(p)]


def test_line_repeated_in_3_of_100_documents(tmp_path: Path) -> None:
    docs = [{"id": f"d{n:03d}", "text": _article(n)} for n in range(100)]
    for n in (10, 40, 70):
        docs[n]["text"] += "\n" + FOOTER
    _write(tmp_path / "in" / "web.jsonl", docs)
    cfg = CorpusConfig.model_validate(DEDUP_ONLY)
    manifest = prepare_corpus([tmp_path / "in"], tmp_path / "a", cfg, shard_mb=0.02)
    assert manifest["counts"]["shards"] > 3  # the lines really cross shards
    with_footer = [r["id"] for r in _outputs(tmp_path / "a") if FOOTER in r["text"]]
    assert with_footer == ["d010"]
    step = manifest["steps"]["line_dedup"]
    assert step["lines_dropped"] == 2 and step["chars_dropped"] == 2 * (len(FOOTER) + 1)
    assert step["reasons"] == {"line:repeated_across_documents": 2}
    four = CorpusConfig.model_validate({**DEDUP_ONLY, "line_dedup": {"min_docs": 4}})
    prepare_corpus([tmp_path / "in"], tmp_path / "b", four, shard_mb=0.02)
    assert sum(FOOTER in r["text"] for r in _outputs(tmp_path / "b")) == 3


def test_three_sentence_spans_across_documents(tmp_path: Path) -> None:
    span = "The ferry leaves at noon. Tickets cost five euros. Dogs travel free."
    docs = [{"id": f"d{n}", "text": _article(n)} for n in range(6)]
    for n in (1, 3, 5):
        docs[n]["text"] += f"\n{span} Enjoy the crossing, says guide number {n}."
    _write(tmp_path / "in" / "a.jsonl", docs)
    spans = CorpusConfig.model_validate({**DEDUP_ONLY, "line_dedup": {"sentence_spans": True}})
    manifest = prepare_corpus([tmp_path / "in"], tmp_path / "out", spans)
    rows = {r["id"]: r["text"] for r in _outputs(tmp_path / "out")}
    assert [k for k, t in rows.items() if "Tickets cost five euros." in t] == ["d1"]
    assert rows["d3"].endswith("\nEnjoy the crossing, says guide number 3.")  # the rest stays
    assert manifest["steps"]["line_dedup"]["reasons"] == {"line:span_repeated_across_documents": 2}


def test_line_repeated_inside_a_document_is_kept_once() -> None:
    long = "This long line is repeated on the page by a broken template."
    text, drops = dedupe_lines_in_document(f"{long}\nYes.\n{long}\nYes.\n{long}", 10)
    assert text == f"{long}\nYes.\nYes."  # short lines are never deduplicated
    assert drops.lines == {"repeated_in_document": 2}


def test_footer_on_30_percent_and_repeated_pages(tmp_path: Path) -> None:
    rng = random.Random(7)
    docs = []
    for n in range(200):
        text = _article(1000 + n)
        if n % 20 == 3:  # 5%: one line over and over
            text = "\n".join([f"Buy the best cheap watches online today at shop {n}."] * 15)
        elif rng.random() < 0.3:
            text += "\n" + FOOTER
        docs.append({"id": f"p{n:03d}", "text": text})
    _write(tmp_path / "in" / "web.jsonl", docs)
    manifest = prepare_corpus([tmp_path / "in"], tmp_path / "out", CorpusConfig(), shard_mb=0.05)
    rows = _outputs(tmp_path / "out")
    assert sum(FOOTER in r["text"] for r in rows) == 1
    kept = {r["id"] for r in rows}
    repeated = {f"p{n:03d}" for n in range(200) if n % 20 == 3}
    assert not kept & repeated
    assert manifest["steps"]["gopher_repetition"]["reasons"] == {"dup_line_frac": 10}
    assert all(r["language"] == "en" and r["language_score"] > 0.9 for r in rows)
    assert manifest["funnel"][0] == {"step": "read", "documents": 200}
    assert manifest["funnel"][-1]["documents"] == len(rows) == manifest["counts"]["train"]


def test_exact_and_near_duplicates_name_the_first(tmp_path: Path) -> None:
    base = [_article(n) for n in range(6)]
    near = base[2].replace(" the ", " a ", 1)
    docs = [{"id": f"d{n}", "text": t} for n, t in enumerate(base)]
    docs += [{"id": "copy", "text": base[1]}, {"id": "close", "text": near}]
    _write(tmp_path / "in" / "a.jsonl", docs)
    manifest = prepare_corpus(
        [tmp_path / "in"], tmp_path / "out", CorpusConfig.model_validate(DEDUP_ONLY)
    )
    assert manifest["duplicates"] == [
        {"id": "copy", "duplicate_of": "d1", "kind": "exact"},
        {"id": "close", "duplicate_of": "d2", "kind": "near"},
    ]
    assert manifest["steps"]["exact_dedup"]["documents_dropped"] == 1
    assert manifest["steps"]["near_dedup"]["examples"][0]["id"] == "close"
    assert [r["id"] for r in load_records(tmp_path / "out", "train")] == [f"d{n}" for n in range(6)]


def test_languages_kept_and_recorded(tmp_path: Path) -> None:
    docs = [
        {"id": "en", "text": _article(1)},
        {"id": "de", "text": "Der Stadtrat hat nach einer langen Debatte den neuen Haushalt "
                             "beschlossen. Die Bibliothek bietet jetzt auch am Sonntag Führungen "
                             "für Familien an."},
        {"id": "zh", "text": "市议会在经过长时间辩论后批准了新的预算。图书馆周日也提供导览服务。"},
    ]  # fmt: skip
    _write(tmp_path / "in" / "a.jsonl", docs)
    overrides = {
        **_dotted(DEDUP_ONLY),
        "language.enabled": True,
        "language.languages": ["en", "zh"],
    }
    cfg = load_corpus_config(None, overrides)
    manifest = prepare_corpus([tmp_path / "in"], tmp_path / "out", cfg)
    rows = {r["id"]: r for r in _outputs(tmp_path / "out")}
    assert sorted(rows) == ["en", "zh"] and rows["zh"]["language"] == "zh"
    assert manifest["steps"]["language"]["reasons"] == {"de": 1}
    assert manifest["languages"]["before"] == {"de": 1, "en": 1, "zh": 1}
    bad = CorpusConfig.model_validate({"language": {"languages": ["xx"]}})
    with pytest.raises(ConfigError, match="unknown language code"):
        prepare_corpus([tmp_path / "in"], tmp_path / "bad", bad)


def _dotted(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def test_config_file_overrides_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "prep.yaml"
    path.write_text("gopher_quality:\n  min_doc_words: 10\nc4:\n  enabled: false\n")
    cfg = load_corpus_config(path, {"line_dedup.min_docs": 5})
    assert cfg.gopher_quality.min_doc_words == 10 and cfg.gopher_quality.min_stop_words == 2
    assert not cfg.c4.enabled and cfg.line_dedup.min_docs == 5
    path.write_text("gopher_quality:\n  min_words: 10\n")
    with pytest.raises(ConfigError, match="min_words"):
        load_corpus_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_corpus_config(path)


def test_resume_skips_shards_whose_input_is_unchanged(tmp_path: Path) -> None:
    docs = [{"id": f"d{n:03d}", "text": _article(n)} for n in range(40)]
    src = _write(tmp_path / "in" / "web.jsonl", docs)
    cfg = CorpusConfig.model_validate(DEDUP_ONLY)
    first = prepare_corpus([src], tmp_path / "out", cfg, shard_mb=0.02)
    work = tmp_path / "out" / ".work"
    stamps = {p.name: p.stat().st_mtime_ns for p in work.glob("f-*.jsonl")}
    with pytest.raises(ConfigError, match="--resume"):
        prepare_corpus([src], tmp_path / "out", cfg, shard_mb=0.02)
    again = prepare_corpus([src], tmp_path / "out", cfg, shard_mb=0.02, resume=True)
    assert again["files"] == first["files"]
    assert {p.name: p.stat().st_mtime_ns for p in work.glob("f-*.jsonl")} == stamps
    docs[-1]["text"] = _article(999)  # only the last shard changes
    _write(src, docs)
    third = prepare_corpus([src], tmp_path / "out", cfg, shard_mb=0.02, resume=True)
    changed = {p.name for p in work.glob("f-*.jsonl") if p.stat().st_mtime_ns != stamps[p.name]}
    assert changed == {max(stamps)}
    assert third["files"] != first["files"]
