"""`llmeco data prepare` end to end, and `llmeco tokenizer train` loading in transformers."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from llmeco.cli.main import app
from llmeco.data.pipeline import PrepareOptions, file_sha256, prepare_dataset

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
runner = CliRunner()


def _inputs(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    para = "Our shop sells bicycles, batteries and helmets to riders in the whole country."
    (src / "a.txt").write_text(
        f"{para}\n\n{para}\n\n{para.replace('country', 'country!')}\n\n"
        "Write to help@shop.example for help with your order please.\n\nok\n"
    )
    chat = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    }
    (src / "c.jsonl").write_text(json.dumps(chat) + "\n")
    return src


def test_prepare_counts_hashes_and_redacts(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    manifest = prepare_dataset([_inputs(tmp_path)], out, PrepareOptions(validation_fraction=0.0))
    counts = manifest["counts"]
    assert counts["dropped"] == {"exact_duplicate": 1, "near_duplicate": 1, "too_short": 1}
    assert counts["chat"] == 1 and counts["text"] == 2 and counts["redacted"] == {"email": 1}
    lines = (out / "train.jsonl").read_text().splitlines()
    assert any("[EMAIL]" in line for line in lines)
    assert any('"messages"' in line for line in lines)
    for name, info in manifest["files"].items():
        assert info["sha256"] == file_sha256(out / name)
        assert info["bytes"] == (out / name).stat().st_size
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "in"]  # no temp dirs left


def test_prepare_is_deterministic(tmp_path: Path) -> None:
    inputs = [EXAMPLES / "corpus", EXAMPLES / "chat"]
    a = prepare_dataset(inputs, tmp_path / "a", PrepareOptions(validation_fraction=0.2))
    b = prepare_dataset(inputs, tmp_path / "b", PrepareOptions(validation_fraction=0.2))
    assert a["files"] == b["files"] and a["counts"]["validation"] > 0


def test_cli_prepare_and_tokenizer(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    inputs = [str(EXAMPLES / "corpus"), str(EXAMPLES / "chat")]
    result = runner.invoke(app, ["data", "prepare", *inputs, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "records_read" in result.output and (out / "manifest.json").is_file()
    again = runner.invoke(app, ["data", "prepare", *inputs, "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    tok_dir = tmp_path / "tok"
    result = runner.invoke(
        app, ["tokenizer", "train", str(out), "--vocab-size", "400", "--out", str(tok_dir)]
    )
    assert result.exit_code == 0, result.output

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    assert len(tok) == 400
    text = "Lumen Cycles repairs électric bicycles."
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n"
    assert im_end in tok(chat, add_special_tokens=False)["input_ids"]


def test_cli_bad_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "x.docx").write_bytes(b"PK")
    result = runner.invoke(
        app, ["data", "prepare", str(tmp_path / "x.docx"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "x.docx" in result.output
    assert not (tmp_path / "o").exists()


def test_out_inside_an_input_folder_is_not_read_back(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    first = prepare_dataset([src], src / "ds", PrepareOptions())
    again = prepare_dataset([src], src / "ds", PrepareOptions(), overwrite=True)
    assert again["counts"] == first["counts"] and again["files"] == first["files"]


def test_labelled_records_keep_their_label(tmp_path: Path) -> None:
    """Classification data (text + label, JSONL or CSV) survives prepare with its label, and
    short labelled texts are not dropped by the prose length rule."""
    src = tmp_path / "in"
    src.mkdir()
    rows = [{"text": "refund pls", "label": "refund"}, {"text": "Battery dead.", "label": 3}]
    (src / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (src / "b.csv").write_text("text,label\nwhere is my order,delivery\n")
    manifest = prepare_dataset([src], tmp_path / "ds", PrepareOptions(validation_fraction=0.0))
    assert manifest["counts"]["train"] == 3 and not manifest["counts"]["dropped"]
    lines = [json.loads(x) for x in (tmp_path / "ds" / "train.jsonl").read_text().splitlines()]
    assert sorted((r["text"], r["label"]) for r in lines) == [
        ("Battery dead.", "3"),
        ("refund pls", "refund"),
        ("where is my order", "delivery"),
    ]
