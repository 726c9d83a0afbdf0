"""The model lifecycle end to end through the CLI, on tiny random Llamas:

* must-show 2 — register → alias → promote with a gate that blocks a worse model (the command
  fails naming the metric) and lets a better one through, gates fed by `eval run --register`;
* must-show 4 — rollback restores the previous version, and greedy output after the rollback
  is identical to before the promote;
* must-show 5 — corrupt one byte of an artifact: loading refuses, naming the file;
* every alias move is in the audit ledger and in `models history`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from llmeco.cli.main import app

runner = CliRunner()


def _variant(src: Path, dst: Path, scale: float, roll: int) -> Path:
    """``src`` with ``lm_head`` scaled (and its rows rolled, which changes greedy output)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    with torch.no_grad():
        weight = model.lm_head.weight
        weight.copy_(torch.roll(weight, shifts=roll, dims=0) * scale)
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    (dst / "training.json").write_text(json.dumps({"origin": str(src), "lm_head_scale": scale}))
    return dst


@pytest.fixture(scope="module")
def variants(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("variants")
    return {
        "base": tiny_llama_dir,
        # logits 3x sharper around random targets: far higher perplexity
        "worse": _variant(tiny_llama_dir, root / "worse", 3.0, 0),
        # logits 10x flatter: perplexity near the vocabulary size, well below the base's
        "better": _variant(tiny_llama_dir, root / "better", 0.1, 1),
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LLMECO_HOME": str(tmp_path / "home"), "LLMECO_DEVICE": "cpu", "LLMECO_AUDIT": "true"}


def cli(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result.output


def _suite(tmp_path: Path) -> Path:
    (tmp_path / "text.jsonl").write_text(
        json.dumps({"text": "Charge the battery fully the evening before a long ride."}) + "\n"
    )
    (tmp_path / "suite.yaml").write_text(
        "name: gate\ntasks:\n  - {name: care, type: perplexity, data: text.jsonl}\n"
    )
    return tmp_path / "suite.yaml"


def _greedy(env: dict[str, str], ref: str) -> str:
    return cli(env, "generate", "--model", ref, "--max-tokens", "12", "Hello there")


def _audit_moves(home: Path) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from llmeco.governance.audit.tables import AuditEntry
    from llmeco.settings import Settings
    from llmeco.store import Store

    store = Store.from_settings(Settings(home=home))
    with store.session() as s:
        payloads = [json.loads(p) for p in s.execute(select(AuditEntry.payload)).scalars()]
    store.close()
    return [p for p in payloads if p.get("action") == "alias.move"]


def test_register_gate_promote_rollback_and_corruption(
    variants: dict[str, Path], env: dict[str, str], tmp_path: Path
) -> None:
    suite = _suite(tmp_path)
    for number, key in enumerate(("base", "worse", "better"), start=1):
        out = cli(
            env, "models", "register", str(variants[key]), "--name", "tiny", "--actor", "alice"
        )
        assert f"registered tiny:{number}:" in out
    for version in (1, 2, 3):
        cli(
            env,
            "eval",
            "run",
            "--model",
            f"tiny:{version}",
            "--suite",
            str(suite),
            "--register",
            "--out",
            str(tmp_path / f"run{version}"),
        )
    ppl = {
        v: json.loads((tmp_path / f"run{v}" / "results.json").read_text())["tasks"]["care"][
            "metrics"
        ]["perplexity"]
        for v in (1, 2, 3)
    }
    assert ppl[2] > ppl[1] > ppl[3], ppl  # worse, base, better — as built

    cli(env, "models", "alias", "tiny", "1", "staging", "--actor", "alice")
    cli(env, "models", "promote", "tiny", "--actor", "alice")
    before = _greedy(env, "tiny@production")

    # a worse candidate is blocked, and the message names the metric
    cli(env, "models", "alias", "tiny", "2", "staging", "--actor", "bob")
    gate = "care.perplexity:gate:0.5"
    out = cli(env, "models", "promote", "tiny", "--gate", gate, "--actor", "bob", code=1)
    assert "care.perplexity" in out and "blocked" in out and "tiny:2" in out
    assert "tiny@production = tiny:1" in cli(env, "models", "history", "tiny", "--at", "2100-01-01")

    # a better one goes through
    cli(env, "models", "alias", "tiny", "3", "staging", "--actor", "carol")
    out = cli(env, "models", "promote", "tiny", "--gate", gate, "--actor", "carol")
    assert "tiny:1 → tiny:3 (promote)" in out
    promoted = _greedy(env, "tiny@production")
    assert promoted != before  # the new version really answers differently

    # rollback restores the previous version and its greedy output exactly
    out = cli(env, "models", "rollback", "tiny", "--actor", "carol")
    assert "tiny:3 → tiny:1 (rollback)" in out
    assert _greedy(env, "tiny@production") == before

    history = cli(env, "models", "history", "tiny", "--alias", "production")
    assert history.count("promote") == 2 and "rollback" in history and "carol" in history
    moves = _audit_moves(Path(env["LLMECO_HOME"]))
    assert [(m["details"]["alias"], m["details"]["from_version"], m["details"]["to_version"])
            for m in moves] == [
        ("staging", None, 1), ("production", None, 1), ("staging", 1, 2),
        ("staging", 2, 3), ("production", 1, 3), ("production", 3, 1),
    ]  # fmt: skip
    assert {m["actor"] for m in moves} == {"alice", "bob", "carol"}

    listing = cli(env, "models", "list")
    assert "tiny" in listing and "production→1" in listing and "staging→3" in listing
    attached = cli(env, "models", "attach", "tiny@production", str(tmp_path / "run1"))
    assert "to tiny:1" in attached
    diff = cli(env, "models", "diff", "tiny:1", "tiny:3")
    assert "care.perplexity" in diff and "lm_head_scale" in diff

    # corrupt one byte of version 1's weights: loading refuses and names the file
    show = json.loads(cli(env, "models", "show", "tiny:1", "--json"))
    weights = next(f for f in show["files"] if f["path"] == "model.safetensors")
    blob = (
        Path(env["LLMECO_HOME"])
        / "artifacts"
        / "sha256"
        / weights["sha256"][:2]
        / weights["sha256"]
    )
    os.chmod(blob, 0o644)
    with blob.open("r+b") as f:
        f.seek(blob.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    out = cli(env, "generate", "--model", "tiny@production", "hi", code=2)
    assert "tiny:1/model.safetensors" in out and "sha256" in out
    assert "tiny:1/model.safetensors" in cli(env, "models", "verify", "tiny:1", code=2)
    cli(env, "models", "verify", "tiny:3")  # the others are intact
