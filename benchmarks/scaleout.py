"""Scale-out throughput: one ``llmeco serve`` vs Ray Serve with 1 and 2 replicas, JSON lines.

    .venv/bin/python benchmarks/scaleout.py [--model default] [--seconds 30] [--clients 16]

Each target serves the same model with ``--no-auth`` on its own port (limits and the ledger
are measured by benchmarks/gateway.py; here the question is what more replicas buy).
``--clients`` clients send chat completions (``--max-tokens`` new tokens, temperature 0)
back to back for ``--seconds`` after a warm-up; each line reports requests/s, completion
tokens/s and latency percentiles. Torch threads: the plain server and a single replica use
every core; with N replicas each gets cores/N (``LLMECO_THREADS``), so the replicas do not
fight over the same cores. On a 2-core machine two replicas cannot do much more than one
engine that already batches on both cores: read the figures as Ray's overhead and the
scaling headroom, not as a multi-node result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

LLMECO = str(Path(sys.executable).parent / "llmeco")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    """Start a server in its own session and wait until ``url`` answers 200."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(cmd[:4])} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"{' '.join(cmd[:4])} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


async def load(base: str, clients: int, seconds: float, max_tokens: int) -> dict[str, Any]:
    """``clients`` back-to-back chat completions for ``seconds``: throughput and latency."""
    body = {
        "model": "default",
        "messages": [{"role": "user", "content": "Write a short story about a lighthouse."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    latencies: list[float] = []
    tokens = 0
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as http:
        for _ in range(2):  # warm-up
            await http.post("/v1/chat/completions", json=body)
        stop_at = time.monotonic() + seconds

        async def client() -> None:
            nonlocal tokens, errors
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                r = await http.post("/v1/chat/completions", json=body)
                if r.status_code != 200:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                tokens += r.json()["usage"]["completion_tokens"]

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "completion_tokens_per_s": round(tokens / elapsed, 1),
        "p50_s": round(cuts[49], 3),
        "p99_s": round(cuts[98], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="llmeco-so-", dir="/tmp"))
    home = Path(os.environ.get("LLMECO_HOME", work / "home"))
    base_env = {
        **os.environ,
        "LLMECO_HOME": str(home),
        "LLMECO_LOG_LEVEL": "WARNING",
        "RAY_TMPDIR": str(work / "r"),
    }
    targets: list[tuple[str, int, list[str]]] = [("serve", 1, [])]
    targets += [(f"ray_{n}_replica{'s' if n > 1 else ''}", n, ["--ray"]) for n in args.replicas]
    for name, replicas, extra in targets:
        port = free_port()
        env = dict(base_env)
        if replicas > 1:
            env["LLMECO_THREADS"] = str(max(1, cores // replicas))
        cmd = [
            LLMECO,
            "serve",
            "--no-auth",
            "--no-embeddings",
            "--model",
            args.model,
            "--port",
            str(port),
            *extra,
        ]
        if extra:
            cmd += ["--replicas", str(replicas), "--replica-cpus", str(cores / replicas)]
        t0 = time.monotonic()
        proc = start(cmd, env, f"http://127.0.0.1:{port}/ready")
        started_s = round(time.monotonic() - t0, 1)
        try:
            result = asyncio.run(
                load(f"http://127.0.0.1:{port}", args.clients, args.seconds, args.max_tokens)
            )
        finally:
            stop(proc)
        line = {
            "target": name,
            "replicas": replicas,
            "clients": args.clients,
            "max_tokens": args.max_tokens,
            "seconds": args.seconds,
            "startup_s": started_s,
            **result,
            "cores": cores,
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
