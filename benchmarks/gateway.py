"""Gateway overhead: what llmeco adds in front of an upstream, JSON lines out.

    .venv/bin/python benchmarks/gateway.py [--model PATH|default] [--upstream model|stub]
                                           [--requests 200] [--rounds 2]

One upstream ``llmeco serve --no-auth`` serves the model (or, with ``--upstream stub``, a
constant-time OpenAI-compatible stub answers in microseconds, which isolates the overhead); in
front of it, in their own processes: **gateway** (``llmeco serve --no-auth --upstream``: the
relay alone), **gateway_governed** (auth with an API key, limits and the audit ledger on, as
deployed), and, when its venv exists (``python scripts/peer_venv.py litellm``), **litellm**'s
proxy as the peer. Each request is a one-token completion (so the upstream's own time is short
and steady); each target gets ``--requests`` requests at concurrency 1 and 32, alternating with
direct calls to the upstream for ``--rounds`` rounds. Latency is send → full response over
keep-alive connections; then the same for streamed four-token completions, send → first SSE
event (TTFT). Each line reports p50/p99 per target and the added p50/p99 (target − direct, same
round). On a shared machine, read ``load_average_1m``: a busy CPU inflates every target alike.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
LLMECO = str(Path(sys.executable).parent / "llmeco")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    """Start a server and wait until ``url`` answers."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:3]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{cmd[:3]} did not start")


def llmeco_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LLMECO_HOME": str(home),
        "LLMECO_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def litellm_python() -> Path | None:
    spec = importlib.util.spec_from_file_location("peer_venv", ROOT / "scripts" / "peer_venv.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return (
        Path(module.venv_python(module.peer_dir("litellm"))) if module.is_built("litellm") else None
    )


async def measure(
    base: str, model: str, key: str | None, requests: int, concurrency: int, stream: bool = False
) -> list[float]:
    """Latencies (ms) of ``requests`` completions at ``concurrency``: one-token, send → full
    response; or with ``stream``, four tokens, send → the first SSE event (TTFT)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body: dict[str, Any] = {"model": model, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
    if stream:
        body.update(stream=True, max_tokens=4, ignore_eos=True)
    out: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=headers) as http:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                t0 = time.perf_counter()
                if not stream:
                    r = await http.post(base + "/v1/completions", json=body)
                    out.append((time.perf_counter() - t0) * 1000)
                    if r.status_code != 200:
                        raise RuntimeError(f"{base}: {r.status_code} {r.text[:200]}")
                    continue
                async with http.stream("POST", base + "/v1/completions", json=body) as r:
                    if r.status_code != 200:
                        raise RuntimeError(f"{base}: {r.status_code}")
                    first: float | None = None
                    async for chunk in r.aiter_bytes():
                        if first is None and b"data:" in chunk:
                            first = (time.perf_counter() - t0) * 1000
                    assert first is not None, f"{base}: empty stream"
                    out.append(first)

        for _ in range(3):  # warm-up
            await http.post(base + "/v1/completions", json=body)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def pct(values: list[float], q: int) -> float:
    return float(round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument(
        "--upstream",
        choices=["model", "stub"],
        default="model",
        help="model: llmeco serving --model; stub: benchmarks/peers/stub_upstream.py, "
        "fixed answers in microseconds, so the overhead is not lost in the model's variance",
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="llmeco-gw-bench-"))
    try:
        up_port = free_port()
        up = f"http://127.0.0.1:{up_port}"
        if args.upstream == "stub":
            up_cmd = [
                str(Path(sys.executable).parent / "uvicorn"),
                "--app-dir",
                str(ROOT / "benchmarks" / "peers"),
                "stub_upstream:app",
                "--log-level",
                "warning",
            ]
        else:
            up_cmd = [LLMECO, "serve", "--no-auth", "--no-embeddings", "--model", args.model]
        home = Path(os.environ.get("LLMECO_HOME", tmp / "up"))
        procs.append(start([*up_cmd, "--port", str(up_port)], llmeco_env(home), up + "/health"))
        model = httpx.get(up + "/v1/models", timeout=30).json()["data"][0]["id"]
        targets: dict[str, tuple[str, str | None]] = {"direct": (up, None)}
        gw_port = free_port()
        gw_cmd = [
            LLMECO,
            "serve",
            "--no-auth",
            "--upstream",
            f"{model}={up}",
            "--port",
            str(gw_port),
        ]
        procs.append(start(gw_cmd, llmeco_env(tmp / "gw"), f"http://127.0.0.1:{gw_port}/health"))
        targets["gateway"] = (f"http://127.0.0.1:{gw_port}", None)
        gov_home = tmp / "gov"
        created = subprocess.run(
            [
                LLMECO,
                "keys",
                "create",
                "--name",
                "bench",
                "--scopes",
                "completions",
                "--rpm",
                "1000000",
                "--tpm",
                "100000000",
                "--daily-tokens",
                "1000000000",
            ],
            env=llmeco_env(gov_home),
            capture_output=True,
            text=True,
            check=True,
        )
        key = created.stdout.strip()
        gov_port = free_port()
        gov_cmd = [LLMECO, "serve", "--upstream", f"{model}={up}", "--port", str(gov_port)]
        procs.append(start(gov_cmd, llmeco_env(gov_home), f"http://127.0.0.1:{gov_port}/health"))
        targets["gateway_governed"] = (f"http://127.0.0.1:{gov_port}", key)
        litellm = litellm_python()
        if litellm is not None:
            lp = free_port()
            cmd = [
                str(litellm.parent / "litellm"),
                "--model",
                f"openai/{model}",
                "--api_base",
                up + "/v1",
                "--port",
                str(lp),
                "--host",
                "127.0.0.1",
            ]
            master = "sk-" + secrets.token_hex(24)  # the proxy refuses to start without one
            env = {**os.environ, "OPENAI_API_KEY": "none", "LITELLM_MASTER_KEY": master}
            procs.append(start(cmd, env, f"http://127.0.0.1:{lp}/health/liveliness"))
            targets["litellm"] = (f"http://127.0.0.1:{lp}", master)
        else:
            print(
                json.dumps(
                    {
                        "peer": "litellm",
                        "skipped": "venv not built: python scripts/peer_venv.py litellm",
                    }
                ),
                flush=True,
            )
        names = {"litellm": f"openai/{model}"}
        for stream, concurrency in ((False, 1), (False, 32), (True, 1), (True, 32)):
            samples: dict[str, list[float]] = {t: [] for t in targets}
            for _ in range(args.rounds):
                for target, (base, token) in targets.items():
                    n = args.requests if concurrency == 1 else args.requests * 4
                    samples[target] += asyncio.run(
                        measure(base, names.get(target, model), token, n, concurrency, stream)
                    )
            direct = samples["direct"]
            for target, values in samples.items():
                line: dict[str, Any] = {
                    "target": target,
                    "measure": "ttft_streamed" if stream else "full_response",
                    "concurrency": concurrency,
                    "requests": len(values),
                    "p50_ms": pct(values, 50),
                    "p99_ms": pct(values, 99),
                    "model": args.model if args.upstream == "model" else "stub",
                    "load_average_1m": round(os.getloadavg()[0], 2),
                }
                if target != "direct":
                    line["added_p50_ms"] = round(pct(values, 50) - pct(direct, 50), 2)
                    line["added_p99_ms"] = round(pct(values, 99) - pct(direct, 99), 2)
                print(json.dumps(line), flush=True)
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
