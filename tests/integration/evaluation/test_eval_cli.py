"""`llmeco eval run` through the real engine on the tiny Llama: generation and every
classification method; greedy runs repeat exactly; `eval compare` shows deltas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeco.cli.main import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "eval"


@pytest.fixture(scope="module")
def classifier_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A (randomly initialised) classification head over the tiny Llama, saved like
    `llmeco train classify` saves one."""
    import torch
    from transformers import AutoTokenizer

    from llmeco.training.classify import build_classifier

    labels = sorted(
        {json.loads(x)["label"] for x in (EXAMPLES / "intents.jsonl").read_text().splitlines()}
    )
    torch.manual_seed(0)
    model = build_classifier(tiny_llama_dir, labels, pad_id=2, dtype=torch.float32)
    out = tmp_path_factory.mktemp("classifier")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(out)
    return out


def test_eval_run_is_repeatable_and_compare_prints_deltas(
    tiny_llama_dir: Path, classifier_dir: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"""name: cli
tasks:
  - {{name: qa, type: generation, data: {EXAMPLES / "support_qa.jsonl"}, limit: 6, max_tokens: 8}}
  - {{name: intents_prompt, type: classification, data: {EXAMPLES / "intents.jsonl"}, limit: 6}}
  - {{name: intents_ll, type: classification, method: loglik,
      data: {EXAMPLES / "intents.jsonl"}, limit: 16}}
  - {{name: intents_head, type: classification, method: head, classifier: {classifier_dir},
      data: {EXAMPLES / "intents.jsonl"}, limit: 16}}
"""
    )
    env = {"LLMECO_HOME": str(tmp_path / "home"), "LLMECO_DEVICE": "cpu"}
    outs = []
    for name in ("a", "b"):
        result = runner.invoke(
            app,
            [
                "eval",
                "run",
                "--model",
                str(tiny_llama_dir),
                "--suite",
                str(suite),
                "--out",
                str(tmp_path / name),
            ],
            env=env,
        )
        assert result.exit_code == 0, (result.output, result.exception)
        outs.append(json.loads((tmp_path / name / "results.json").read_text()))
    a, b = outs

    def metrics(run: dict) -> dict:
        return {name: (t["n"], t["metrics"], t["details"]) for name, t in run["tasks"].items()}

    assert metrics(a) == metrics(b)
    for task in ("qa", "intents_prompt"):
        pa = (tmp_path / "a" / "predictions" / f"{task}.jsonl").read_text()
        assert pa == (tmp_path / "b" / "predictions" / f"{task}.jsonl").read_text()  # greedy: exact
    qa = a["tasks"]["qa"]["metrics"]
    assert {
        "exact_match",
        "token_f1",
        "bleu",
        "chrf",
        "rouge1",
        "rouge2",
        "rougeL",
        "keyword_recall",
    } <= set(qa)
    assert (
        "roc_auc" in a["tasks"]["intents_ll"]["metrics"]
        and "roc_auc" in a["tasks"]["intents_head"]["metrics"]
    )
    assert "roc_auc" not in a["tasks"]["intents_prompt"]["metrics"]
    prompt_preds = [
        json.loads(x)
        for x in (tmp_path / "a" / "predictions" / "intents_prompt.jsonl").read_text().splitlines()
    ]
    labels = set(a["tasks"]["intents_prompt"]["details"]["labels"])
    assert all(p["pred"] in labels for p in prompt_preds)  # constrained decoding: always a label

    # compare: edit B's accuracy to see a signed, coloured delta
    b["tasks"]["intents_ll"]["metrics"]["accuracy"] += 0.125
    (tmp_path / "b" / "results.json").write_text(json.dumps(b))
    result = runner.invoke(
        app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")], env=env
    )
    assert result.exit_code == 0, result.output
    assert "+0.1250" in result.output and "intents_ll" in result.output

    missing = runner.invoke(
        app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "nope")], env=env
    )
    assert missing.exit_code == 2 and "no evaluation run" in missing.output
    bad = runner.invoke(
        app,
        ["eval", "run", "--model", str(tiny_llama_dir), "--suite", str(suite), "--register"],
        env=env,
    )
    assert bad.exit_code == 2 and "registry reference" in bad.output
