"""Generation, prompt classification and retrieval tasks against a scripted engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import ScriptedEngine

from llmeco.evaluation.context import EvalContext
from llmeco.evaluation.runner import run_suite
from llmeco.evaluation.suite import load_suite
from llmeco.settings import Settings


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_generation_batches_requests_and_scores_greedy_outputs(tmp_path: Path) -> None:
    from llmeco.evaluation.builtin_tasks import GenerationConfig, run_generation

    answers = {"q1": "Three to five working days.", "q2": "No idea.", "q3": "Free above 200 euros."}
    rows = [
        {"prompt": "q1", "reference": "Three to five working days.", "keywords": [["five"]]},
        {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "Yes."}]},
        {
            "prompt": "q3",
            "reference": ["Delivery is free above 200 euros.", "x"],
            "keywords": [["free"], ["300"]],
        },
    ]
    engine = ScriptedEngine(lambda q: answers[q])
    config = GenerationConfig(name="qa", data=_jsonl(tmp_path / "qa.jsonl", rows), max_tokens=20)
    ctx = EvalContext(Settings(home=tmp_path), tmp_path, "m", engine=engine, concurrency=8)
    result = await run_generation(config, ctx)
    assert engine.peak == 3  # all in flight together: the engine batches them
    assert all(p.temperature == 0.0 and p.max_tokens == 20 for p in engine.params)
    assert result.n == 3
    assert result.metrics["exact_match"] == pytest.approx(1 / 3)
    # over the rows that list keywords: q1 has all, q3 half
    assert result.metrics["keyword_recall"] == pytest.approx(0.75)
    assert result.metrics["keyword_all"] == pytest.approx(0.5)
    assert [p["output"] for p in result.predictions] == [
        answers["q1"],
        answers["q2"],
        answers["q3"],
    ]
    assert result.predictions[1]["references"] == ["Yes."]


async def test_generation_respects_the_concurrency_limit(tmp_path: Path) -> None:
    from llmeco.evaluation.builtin_tasks import GenerationConfig, run_generation

    rows = [{"prompt": f"q{i}", "reference": "a"} for i in range(10)]
    engine = ScriptedEngine(lambda q: "a")
    config = GenerationConfig(name="qa", data=_jsonl(tmp_path / "qa.jsonl", rows))
    ctx = EvalContext(Settings(home=tmp_path), tmp_path, "m", engine=engine, concurrency=4)
    result = await run_generation(config, ctx)
    assert engine.peak == 4 and result.metrics["exact_match"] == 1.0


async def test_prompt_classification_is_constrained_to_the_labels(tmp_path: Path) -> None:
    from llmeco.evaluation.builtin_tasks import ClassificationConfig, run_classification

    rows = [
        {"text": "where is my parcel", "label": "delivery"},
        {"text": "refund please", "label": "refund"},
        {"text": "parcel late", "label": "delivery"},
        {"text": "money back", "label": "refund"},
    ]

    def answer(prompt: str) -> str:
        label = "delivery" if "parcel" in prompt or "money" in prompt else "refund"
        return json.dumps({"label": label})

    engine = ScriptedEngine(answer)
    config = ClassificationConfig(name="intent", data=_jsonl(tmp_path / "c.jsonl", rows))
    ctx = EvalContext(Settings(home=tmp_path), tmp_path, "m", engine=engine)
    result = await run_classification(config, ctx)
    schema = engine.params[0].structured
    assert schema is not None and schema.schema is not None
    assert schema.schema["properties"]["label"]["enum"] == ["delivery", "refund"]
    assert result.metrics["accuracy"] == 0.75
    assert result.details["confusion_matrix"] == [[2, 0], [1, 1]]
    assert "roc_auc" not in result.metrics  # no scores from prompting


async def test_unconstrained_prompt_classification_matches_label_mentions(tmp_path: Path) -> None:
    from llmeco.evaluation.builtin_tasks import ClassificationConfig, run_classification

    rows = [{"text": "a", "label": "order_delivery"}, {"text": "b", "label": "billing_payment"}]
    replies = {"a": "I think this is Order Delivery.", "b": "weather"}
    engine = ScriptedEngine(lambda p: replies[p.split("Message: ")[1].split("\n")[0]])
    config = ClassificationConfig(
        name="intent", data=_jsonl(tmp_path / "c.jsonl", rows), constrained=False
    )
    ctx = EvalContext(Settings(home=tmp_path), tmp_path, "m", engine=engine)
    result = await run_classification(config, ctx)
    assert [p["pred"] for p in result.predictions] == ["order_delivery", "weather"]
    assert result.details["labels"][-1] == "(other)"
    assert result.metrics["accuracy"] == 0.5


async def test_retrieval_task_takes_any_retriever_callable(tmp_path: Path) -> None:
    from llmeco.evaluation.builtin_tasks import RetrievalConfig, run_retrieval

    rows = [
        {"query": "refund time", "relevant": ["doc#refunds"]},
        {"query": "delivery", "relevant": ["doc#delivery", "faq#shipping"]},
        {"query": "weather on mars", "relevant": []},  # out of scope: skipped
    ]
    index = {"refund time": ["doc#delivery", "doc#refunds"], "delivery": ["faq#shipping"]}
    calls: list[tuple[str, int]] = []

    def retriever(query: str, k: int) -> list[str]:
        calls.append((query, k))
        return index[query][:k]

    config = RetrievalConfig(
        name="kb", data=_jsonl(tmp_path / "r.jsonl", rows), retriever="toy", k=[1, 2]
    )
    ctx = EvalContext(Settings(home=tmp_path), tmp_path, "m", retrievers={"toy": retriever})
    result = await run_retrieval(config, ctx)
    assert calls == [("refund time", 2), ("delivery", 2)]
    assert result.metrics == {"hit@1": 0.5, "hit@2": 1.0, "mrr": 0.75}
    assert result.details["skipped"] == 1


async def test_unknown_retriever_names_what_exists(tmp_path: Path) -> None:
    from llmeco.errors import ConfigError

    ctx = EvalContext(Settings(home=tmp_path), tmp_path, "m", retrievers={"toy": lambda q, k: []})
    with pytest.raises(ConfigError, match=r"available: toy, kb:…"):
        ctx.retriever("nosuch:thing")


async def test_run_suite_writes_json_markdown_chart_and_predictions(tmp_path: Path) -> None:
    from llmeco.evaluation.report import load_run

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"x")
    (model / "tokenizer.json").write_text("{}")
    _jsonl(tmp_path / "qa.jsonl", [{"prompt": "q", "reference": "a b"}])
    (tmp_path / "suite.yaml").write_text(
        "name: tiny\ntasks:\n  - {name: qa, type: generation, data: qa.jsonl}\n"
    )
    engine = ScriptedEngine(lambda q: "a b")
    record, out = await run_suite(
        load_suite(tmp_path / "suite.yaml"),
        str(model),
        Settings(home=tmp_path / "home"),
        out_dir=tmp_path / "run",
        engine=engine,
    )
    assert out == tmp_path / "run"
    for name in ("results.json", "report.md", "chart.png", "predictions/qa.jsonl"):
        assert (out / name).is_file(), name
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_run(out)["tasks"]["qa"]["metrics"]["exact_match"] == 1.0
    assert "| qa | generation | 1 | exact_match | 1.0000 |" in (out / "report.md").read_text()
    assert record["model"]["registry"] is None
