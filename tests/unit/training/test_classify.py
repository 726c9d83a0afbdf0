"""Classification: labels from the data, accuracy/F1 per epoch, early stopping, inference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from llmeco.cli.main import app
from llmeco.data.pipeline import PrepareOptions, prepare_dataset
from llmeco.errors import ConfigError, InvalidRequest
from llmeco.settings import Settings
from llmeco.training.classify import label_names, load_classifier, macro_f1
from llmeco.training.config import load_config
from llmeco.training.loop import train
from llmeco.training.runlog import read_log

QUIET = Console(quiet=True)
TOPICS = {
    "battery": ["the battery will not charge", "battery drains fast", "charger light is red"],
    "refund": ["I want my money back", "where is my refund", "please refund the order"],
    "login": ["cannot sign in", "password reset fails", "my account is locked"],
}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(prepared train dataset, held-out JSONL) of three clearly separable intents."""
    root = tmp_path_factory.mktemp("cls")
    rows = [
        {"text": f"{opener} {phrase}", "label": label}
        for label, phrases in TOPICS.items()
        for phrase in phrases
        for opener in ("hi,", "hello,", "hey,", "", "good day,")
    ]
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    held = [{"text": f"ok so {p}", "label": label} for label, ps in TOPICS.items() for p in ps]
    (root / "held.jsonl").write_text("\n".join(json.dumps(r) for r in held) + "\n")
    options = PrepareOptions(validation_fraction=0.0, near_dedup=False)
    prepare_dataset([root / "train.jsonl"], root / "ds", options)
    return root / "ds", root / "held.jsonl"


def test_labels_and_f1() -> None:
    assert label_names([{"text": "a", "label": "y"}, {"text": "b", "label": "x"}], None) == [
        "x",
        "y",
    ]
    with pytest.raises(ConfigError, match="does not list label"):
        label_names([{"text": "a", "label": "z"}, {"text": "b", "label": "x"}], ["x", "y"])
    with pytest.raises(ConfigError, match="at least two labels"):
        label_names([{"text": "a", "label": "x"}], None)
    with pytest.raises(ConfigError, match="'label' field"):
        label_names([{"text": "a"}], None)
    assert macro_f1([0, 1, 1], [0, 1, 0], 3) == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_classifier_learns_stops_early_and_predicts(
    tmp_path: Path, labelled: tuple[Path, Path], tiny_llama_dir: Path, cached_home: Path
) -> None:
    dataset, held = labelled
    out = tmp_path / "cls"
    config = load_config(
        None,
        "classify",
        [
            f"output_dir={out}", f"model.base={tiny_llama_dir}", f"data.dataset={dataset}",
            f"data.validation={held}", "epochs=12", "batch_size=15", "seq_len=32",
            "optim.lr=5e-3", "optim.warmup_steps=0", "eval_every=0",
            "early_stopping={patience: 2, metric: eval_accuracy}",
        ],
    )  # fmt: skip
    metrics = train(config, settings=Settings(home=cached_home), console=QUIET, show_progress=False)
    evals = [e for e in read_log(out) if "eval_accuracy" in e]
    assert {"eval_loss", "eval_accuracy", "eval_macro_f1"} <= evals[-1].keys()
    assert [e["step"] for e in evals][:3] == [0, 3, 6]  # 45 examples / 15 = one eval per epoch
    assert metrics["eval_accuracy"] == 1.0 and metrics["eval_macro_f1"] == 1.0
    record = json.loads((out / "training.json").read_text())
    assert record["stopped_early"] and record["steps"] < 36  # patience ran out before epoch 12
    assert record["labels"] == ["battery", "login", "refund"]
    assert record["best"]["metric"] == "eval_accuracy" and record["best"]["value"] == 1.0

    classifier = load_classifier(out)
    predictions = classifier.predict(["the battery is not charging", "refund my order please"])
    assert [p.label for p in predictions] == ["battery", "refund"]
    assert abs(sum(predictions[0].scores.values()) - 1.0) < 1e-5
    with pytest.raises(InvalidRequest):
        classifier.predict([])
    with pytest.raises(ConfigError, match="not a classifier"):
        load_classifier(tiny_llama_dir)


def test_lora_classifier_merges(
    tmp_path: Path, labelled: tuple[Path, Path], tiny_llama_dir: Path, cached_home: Path
) -> None:
    dataset, held = labelled
    out = tmp_path / "lora"
    config = load_config(
        None,
        "classify",
        [
            f"output_dir={out}", f"model.base={tiny_llama_dir}", f"data.dataset={dataset}",
            f"data.validation={held}", "max_steps=3", "batch_size=15", "seq_len=32",
            "eval_every=3", "lora={r: 4}",
        ],
    )  # fmt: skip
    train(config, settings=Settings(home=cached_home), console=QUIET, show_progress=False)
    merged = tmp_path / "merged"
    result = CliRunner().invoke(
        app, ["train", "merge", "--base", str(tiny_llama_dir), "--adapter", str(out / "adapter"),
              "--out", str(merged)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    texts = [json.loads(line)["text"] for line in held.read_text().splitlines()]
    a = [p.scores for p in load_classifier(out).predict(texts)]
    b = [p.scores for p in load_classifier(merged).predict(texts)]
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        assert all(abs(x[k] - y[k]) < 1e-4 for k in x)
