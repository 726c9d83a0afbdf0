"""Function calling on the Berkeley Function Calling Leaderboard (BFCL) data, through the server.

For each category (``simple_python``, ``multiple``, ``parallel``, ``irrelevance``) every
question goes to ``POST /v1/chat/completions`` with its functions as ``tools`` (the official
``openai`` client over the app in process, greedy decoding), once per mode:

- ``unconstrained``: the model writes whatever it writes; the server parses tool calls from it;
- ``auto``: ``tool_choice="auto"`` under the engine's tool grammar (plain text or calls whose
  arguments validate against the tool's schema).

Per category and mode it reports: ``valid`` — of the responses that make a call and were not
cut by ``max_tokens`` (``cut_by_max_tokens`` counts those), the share whose every call names a
given function with arguments that parse and validate against its schema (``jsonschema``);
``ast_accuracy`` — the share of questions BFCL's own AST checker
(``bfcl_eval.eval_checker.ast_eval.ast_checker``) accepts; for ``irrelevance``,
``irrelevance_accuracy`` — the share answered without a call.

The data and the checker come from the ``bfcl-eval`` wheel on PyPI, fetched once with
``pip download --no-deps`` into ``LLMECO_HOME/bench/bfcl`` (its pinned dependencies — numpy
1.26, vLLM, provider SDKs — are not installed: the AST checker itself needs none of them, only
a model-name table it imports from a module that does, which is replaced here by a one-entry
stand-in saying that function names have their dots replaced by underscores, as OpenAI's
``tools`` require).

    python benchmarks/tools.py --sample 50 --out benchmarks/results-tools.json
    python benchmarks/tools.py --model PATH_TO_FINETUNED --sample 50
    python benchmarks/tools.py --rescore DETAILS.jsonl --sample 50   # score saved replies again
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import random
import subprocess
import sys
import time
import types
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

BFCL_VERSION = "2026.3.23"
CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance")
MODES = ("unconstrained", "auto")
#: BFCL model name handed to the checker (only used to look up the dot → underscore rule).
CHECKER_MODEL = "llmeco"

_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}


def bfcl_wheel(home: Path) -> Path:
    """The ``bfcl-eval`` wheel, downloaded once (no dependencies) under ``home``."""
    cache = home / "bench" / "bfcl"
    found = sorted(cache.glob(f"bfcl_eval-{BFCL_VERSION}-*.whl"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "-d",
            str(cache),
            f"bfcl-eval=={BFCL_VERSION}",
        ],
        check=True,
    )
    return sorted(cache.glob(f"bfcl_eval-{BFCL_VERSION}-*.whl"))[0]


def load_category(wheel: Path, category: str) -> list[dict[str, Any]]:
    """Questions of one category with their possible answers (none for irrelevance)."""
    with zipfile.ZipFile(wheel) as z:
        questions = _jsonl(z.read(f"bfcl_eval/data/BFCL_v4_{category}.json"))
        answers: dict[str, Any] = {}
        if category != "irrelevance":
            raw = z.read(f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json")
            answers = {a["id"]: a["ground_truth"] for a in _jsonl(raw)}
    for q in questions:
        q["ground_truth"] = answers.get(q["id"])
    return questions


def _jsonl(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def ast_checker(wheel: Path) -> Callable[..., dict[str, Any]]:
    """BFCL's AST checker, imported from the wheel with the stand-in model table."""
    target = wheel.parent / "unpacked"
    if not (target / "bfcl_eval").is_dir():
        with zipfile.ZipFile(wheel) as z:
            z.extractall(target)
    sys.path.insert(0, str(target))
    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = {CHECKER_MODEL: types.SimpleNamespace(underscore_to_dot=True)}  # type: ignore[attr-defined]
    sys.modules["bfcl_eval.constants.model_config"] = stub
    from bfcl_eval.constants.enums import Language  # type: ignore[import-not-found]
    from bfcl_eval.eval_checker.ast_eval.ast_checker import (  # type: ignore[import-not-found]
        ast_checker as check,
    )

    def run(
        functions: list[dict[str, Any]], output: list[dict[str, Any]], answer: Any, category: str
    ) -> dict[str, Any]:
        return check(functions, output, answer, Language.PYTHON, category, CHECKER_MODEL)  # type: ignore[no-any-return]

    return run


def json_schema(bfcl: dict[str, Any]) -> dict[str, Any]:
    """A BFCL parameter schema (Python type names: dict, float, tuple, any) as JSON Schema."""
    out = copy.deepcopy(bfcl)

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and kind in _TYPES:
                if _TYPES[kind] is None:
                    node.pop("type")
                else:
                    node["type"] = _TYPES[kind]
            for key in ("properties",):
                for child in (node.get(key) or {}).values():
                    fix(child)
            if "items" in node:
                fix(node["items"])
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)

    fix(out)
    return out


def tools_of(question: dict[str, Any]) -> list[dict[str, Any]]:
    """The question's functions as OpenAI ``tools`` (dots in names become underscores)."""
    return [
        {
            "type": "function",
            "function": {
                "name": f["name"].replace(".", "_"),
                "description": f.get("description", ""),
                "parameters": json_schema(f["parameters"]),
            },
        }
        for f in question["function"]
    ]


def validates(call: dict[str, Any], tools: list[dict[str, Any]]) -> bool:
    """Whether ``call`` names a given tool and its arguments parse and fit its schema."""
    import jsonschema

    schema = next(
        (t["function"]["parameters"] for t in tools if t["function"]["name"] == call["name"]),
        None,
    )
    if schema is None:
        return False
    try:
        args = json.loads(call["arguments"])
        jsonschema.validate(args, schema)
    except (json.JSONDecodeError, jsonschema.ValidationError, jsonschema.SchemaError):
        return False
    return isinstance(args, dict)


async def ask(
    client: Any, model: str, question: dict[str, Any], sem: asyncio.Semaphore, mode: str
) -> dict[str, Any]:
    """One question → the calls the server returned (name, raw arguments) and the text."""
    async with sem:
        r = await client.chat.completions.create(
            model=model,
            messages=question["question"][0],
            tools=tools_of(question),
            tool_choice="auto",
            temperature=0,
            max_tokens=256,
            extra_body={"tool_grammar": "off" if mode == "unconstrained" else "auto"},
        )
    message = r.choices[0].message
    calls = [
        {"name": c.function.name, "arguments": c.function.arguments}
        for c in (message.tool_calls or [])
    ]
    return {"calls": calls, "content": message.content or "", "finish": r.choices[0].finish_reason}


def score(
    category: str,
    questions: list[dict[str, Any]],
    replies: list[dict[str, Any]],
    check: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """The category's figures (see the module docstring)."""
    n = len(questions)
    with_calls = [(q, r) for q, r in zip(questions, replies, strict=True) if r["calls"]]
    # A reply cut by max_tokens holds an unfinished call that no grammar can complete.
    finished = [(q, r) for q, r in with_calls if r["finish"] != "length"]
    valid = sum(all(validates(c, tools_of(q)) for c in r["calls"]) for q, r in finished)
    row: dict[str, Any] = {
        "questions": n,
        "made_calls": len(with_calls),
        "cut_by_max_tokens": len(with_calls) - len(finished),
        "valid": round(valid / len(finished), 4) if finished else None,
    }
    if category == "irrelevance":
        row["irrelevance_accuracy"] = round(sum(not r["calls"] for r in replies) / n, 4)
        return row
    correct = 0
    for q, r in zip(questions, replies, strict=True):
        try:
            output = [{c["name"]: json.loads(c["arguments"])} for c in r["calls"]]
        except json.JSONDecodeError:
            continue
        if output and check(q["function"], output, q["ground_truth"], category)["valid"]:
            correct += 1
    row["ast_accuracy"] = round(correct / n, 4)
    return row


async def run_mode(
    mode: str,
    args: argparse.Namespace,
    data: dict[str, list[dict[str, Any]]],
    check: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """Serve the model and run every category through it with the mode's ``tool_grammar``."""
    import httpx
    from openai import AsyncOpenAI

    from llmeco.engine.async_engine import AsyncEngine
    from llmeco.server import build_app
    from llmeco.settings import Settings

    settings = Settings()
    engine = AsyncEngine.from_ref(args.model, settings)
    name = engine.model_info.name
    app = build_app(settings, {name: engine})
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://bench/v1", timeout=900)
    client = AsyncOpenAI(base_url="http://bench/v1", api_key="unused", http_client=http)
    sem = asyncio.Semaphore(args.concurrency)
    out: dict[str, Any] = {}
    try:
        for category, questions in data.items():
            t0 = time.perf_counter()
            replies = await asyncio.gather(*(ask(client, name, q, sem, mode) for q in questions))
            out[category] = {
                **score(category, questions, replies, check),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(
                json.dumps({"mode": mode, "category": category, **out[category]}), file=sys.stderr
            )
            if args.details:
                with args.details.open("a") as f:
                    for q, r in zip(questions, replies, strict=True):
                        f.write(json.dumps({"mode": mode, "id": q["id"], **r}) + "\n")
    finally:
        await http.aclose()
        await engine.shutdown()
    return out


def rescore(
    details: Path, data: dict[str, list[dict[str, Any]]], check: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """Score replies saved by ``--details`` (the last reply per mode and question wins)."""
    saved: dict[tuple[str, str], dict[str, Any]] = {}
    for line in details.read_text().splitlines():
        reply = json.loads(line)
        saved[reply["mode"], reply["id"]] = reply
    out: dict[str, Any] = {}
    for mode in MODES:
        for category, questions in data.items():
            replies = [saved.get((mode, q["id"])) for q in questions]
            if all(r is not None for r in replies):
                out.setdefault(mode, {})[category] = score(category, questions, replies, check)
    return out


def main() -> None:
    """Run every mode over the chosen categories and print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--categories", nargs="+", choices=CATEGORIES, default=list(CATEGORIES))
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--limit", type=int, default=0, help="first N questions per category (0: all)")
    ap.add_argument(
        "--sample", type=int, default=0, help="N random questions per category (seed 0; nested)"
    )
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--details", type=Path, help="append each reply here (JSONL)")
    ap.add_argument("--out", type=Path, help="also write the result JSON here")
    ap.add_argument(
        "--rescore", type=Path, help="score the replies saved by --details instead of asking"
    )
    args = ap.parse_args()
    from llmeco.settings import Settings

    wheel = bfcl_wheel(Settings().home)
    check = ast_checker(wheel)
    data = {}
    for category in args.categories:
        questions = load_category(wheel, category)
        if args.sample and args.sample < len(questions):
            order = list(range(len(questions)))
            random.Random(0).shuffle(order)  # nested: a smaller --sample is a subset of a larger
            picked = sorted(order[: args.sample])
            questions = [questions[i] for i in picked]
        data[category] = questions[: args.limit] if args.limit else questions
    result = {
        "benchmark": "bfcl",
        "bfcl_eval": BFCL_VERSION,
        "model": args.model,
        "limit": args.limit,
        "sample": args.sample,
        "modes": (
            rescore(args.rescore, data, check)
            if args.rescore
            else {mode: asyncio.run(run_mode(mode, args, data, check)) for mode in args.modes}
        ),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
