"""Governance overhead: what auth + limits + the audit ledger add to a request, JSON out.

    .venv/bin/python benchmarks/governance_overhead.py [--rate 200] [--seconds 10] [--rounds 2]

Two servers run in their own processes, each the real ``build_app`` under uvicorn over the
same stub engine (``/v1/models`` never generates): **plain** (no auth, no ledger) and
**governed** (API-key auth with an RPM/TPM/daily-limited key through the limiter, and the
audit ledger on SQLite committing each entry before the response). An open-loop client sends
``GET /v1/models`` at ``--rate`` requests/s (fixed spacing; keep-alive connections; a minimal
HTTP/1.1 client so the generator's own CPU stays small) to one server, then the other,
alternating for ``--rounds`` rounds of ``--seconds`` each after a warm-up. Latency is send →
full response. The result is the added p50 (governed − plain). On a shared machine, look at
``load_average_1m_before`` and ``max_send_lag_ms``: a busy CPU inflates both servers alike.

It also measures the same two apps in-process (``httpx.ASGITransport``, one request at a
time, no network), which isolates the middlewares' own CPU cost, and reads the ledger's
group-commit ratio (entries per transaction) and verifies the governed server's ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from llmeco.engine.protocol import EngineStats, ModelInfo
from llmeco.settings import Settings

TARGET_ADDED_P50_MS = 2.0


class StubEngine:
    """Enough of an EngineClient for /v1/models (nothing is generated)."""

    model_info = ModelInfo(name="stub", max_model_len=2048, vocab_size=32000, created=0)

    def acquire(self) -> StubEngine:
        """A plain engine serves every request itself."""
        return self

    def stats(self) -> EngineStats:
        return EngineStats(running=0, waiting=0, kv_blocks_used=0, kv_blocks_total=1)

    async def check_health(self) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None


def build(mode: str, home: Path) -> tuple[Any, str, list[Any]]:
    """The app for ``mode``, the bearer token to use (or ""), and what to close after."""
    from llmeco.server import build_app

    settings = Settings(home=home)
    engines: dict[str, Any] = {"stub": StubEngine()}
    if mode == "plain":
        return build_app(settings, engines), "", []
    from llmeco.governance.audit import AuditLedger
    from llmeco.governance.scopes import SCOPES, Grant
    from llmeco.server.auth import Authenticator

    ledger = AuditLedger.open(settings)
    auth = Authenticator.open(settings, ledger.store)
    grant = Grant(scopes=frozenset(SCOPES), rpm=10_000_000, tpm=10_000_000, daily_tokens=10_000_000)
    _, token = auth.keys.create("overhead-bench", grant)
    app = build_app(settings, engines, ledger=ledger, auth=auth)
    return app, token, [auth, ledger]


def serve(mode: str, home: Path) -> None:
    """Child process: serve ``mode`` on a free port; print the URL and token; stop on TERM."""
    import uvicorn

    from llmeco.observability.logging import configure_logging

    log = open(home / f"{mode}.log", "w")  # noqa: SIM115 - lives as long as the process
    configure_logging("INFO", log)  # access logs on, as in production, for both servers
    app, token, closers = build(mode, home)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    bound = config.bind_socket()
    # uvicorn's bind_socket leaves proto=0, so asyncio never sets TCP_NODELAY on accepted
    # sockets and every keep-alive request waits ~40 ms on a delayed ACK (Kludex/uvicorn#3149).
    sock = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    print(f"URL http://127.0.0.1:{sock.getsockname()[1]} TOKEN {token or '-'}", flush=True)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        for c in closers:
            if hasattr(c, "aclose"):
                asyncio.run(c.aclose())
            else:
                c.close()


def start(mode: str, home: Path) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--home", str(home)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.match(r"URL (\S+) TOKEN (\S+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"{mode} server did not start: {line!r}")
    token = match.group(2)
    return proc, match.group(1), "" if token == "-" else token


class RawClient:
    """A minimal keep-alive HTTP/1.1 client (GET only) so the load generator's own CPU cost
    (~50 µs a request, vs ~1 ms for httpx) does not blur the servers' latencies."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.request = f"GET /v1/models HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self) -> int:
        """One request on an idle (or new) connection; returns the status code.

        An idle connection the server has meanwhile closed (uvicorn's 5 s keep-alive) is
        replaced, as any HTTP client does.
        """
        while self.idle:
            try:
                return await self._get(self.idle.pop())
            except (OSError, asyncio.IncompleteReadError):
                continue
        return await self._get(await asyncio.open_connection(self.host, self.port))

    async def _get(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> int:
        reader, writer = conn
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        self.idle.append(conn)
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def open_loop(url: str, token: str, rate: float, seconds: float) -> dict[str, Any]:
    """Send GET /v1/models at ``rate``/s for ``seconds``; latencies of the 200s, errors."""
    client = RawClient(url, token)
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def one() -> None:
        t0 = time.perf_counter()
        try:
            status = await client.get()
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] += 1
            return
        if status == 200:
            latencies.append(time.perf_counter() - t0)
        else:
            errors[f"HTTP {status}"] += 1

    tasks = []
    n = int(rate * seconds)
    lag = 0.0
    t_start = time.perf_counter()
    for i in range(n):
        delay = t_start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = max(lag, -delay)
        tasks.append(asyncio.create_task(one()))
    send_seconds = time.perf_counter() - t_start
    await asyncio.gather(*tasks)
    client.close()
    return {
        "latencies": latencies,
        "errors": errors,
        "sent": n,
        "elapsed": send_seconds,
        "max_send_lag_ms": lag * 1000,
    }


def summary(latencies: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean in milliseconds."""
    ms = sorted(x * 1000 for x in latencies)
    if not ms:
        return {}
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else [ms[0]] * 99
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p90_ms": round(q[89], 3),
        "p99_ms": round(q[98], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


async def in_process(home: Path, n: int) -> dict[str, Any]:
    """Median time per request through each app in-process (no network, one at a time)."""
    out: dict[str, Any] = {}
    for mode in ("plain", "governed"):
        app, token, closers = build(mode, home / f"inproc-{mode}")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        transport = httpx.ASGITransport(app=app)
        times = []
        client = httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers)
        async with client as c:
            for i in range(n + 50):
                t0 = time.perf_counter()
                r = await c.get("/v1/models")
                if i >= 50:  # warm-up excluded
                    times.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
        for closer in closers:
            if hasattr(closer, "aclose"):
                await closer.aclose()
            else:
                closer.close()
        out[mode] = summary(times)
    out["added_p50_ms"] = round(out["governed"]["p50_ms"] - out["plain"]["p50_ms"], 3)
    return out


def ledger_facts(home: Path, requests: int) -> dict[str, Any]:
    """Entries, commits (transactions) and verification of the governed server's ledger."""
    from llmeco.governance.audit.checkpoint import Signer
    from llmeco.governance.audit.verify import verify_ledger
    from llmeco.store import Store

    settings = Settings(home=home)
    store = Store.from_settings(settings)
    with store.engine.connect() as conn:
        commits = conn.exec_driver_sql("SELECT writes FROM audit_head").scalar_one()
    report = verify_ledger(store, Signer.from_settings(settings).public_key)
    store.close()
    return {
        "entries": report.entries,
        "requests_sent": requests,
        "transactions": commits,
        "entries_per_transaction": round(report.entries / max(1, commits), 2),
        "verify_ok": report.ok,
    }


def main() -> int:
    """Run both servers, alternate open-loop rounds, print one JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="per round and server")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, not measured")
    parser.add_argument("--in-process", type=int, default=2000, help="requests (0: skip)")
    parser.add_argument("--serve", choices=("plain", "governed"), help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.home)
        return 0

    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="llmeco-overhead-") as tmp:
        root = Path(tmp)
        procs: dict[str, tuple[subprocess.Popen[str], str, str]] = {}
        lat: dict[str, list[float]] = {"plain": [], "governed": []}
        errs: dict[str, Counter[str]] = {"plain": Counter(), "governed": Counter()}
        sent = {"plain": 0, "governed": 0}
        achieved: dict[str, list[float]] = {"plain": [], "governed": []}
        lags: dict[str, float] = {"plain": 0.0, "governed": 0.0}
        try:
            for mode in ("plain", "governed"):
                (root / mode).mkdir()
                procs[mode] = start(mode, root / mode)
            for mode, (_, url, token) in procs.items():
                r = asyncio.run(open_loop(url, token, args.rate, args.warmup))
                sent[mode] += r["sent"]
            for _ in range(args.rounds):
                for mode, (_, url, token) in procs.items():
                    r = asyncio.run(open_loop(url, token, args.rate, args.seconds))
                    lat[mode] += r["latencies"]
                    errs[mode] += r["errors"]
                    sent[mode] += r["sent"]
                    achieved[mode].append(r["sent"] / r["elapsed"])
                    lags[mode] = max(lags[mode], r["max_send_lag_ms"])
        finally:
            for proc, _, _ in procs.values():
                proc.send_signal(signal.SIGTERM)
            for proc, _, _ in procs.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        servers = {
            mode: {
                **summary(lat[mode]),
                "measured_requests": len(lat[mode]),
                "errors": dict(errs[mode]),
                "achieved_rate": round(statistics.fmean(achieved[mode]), 1),
                "max_send_lag_ms": round(lags[mode], 1),
            }
            for mode in lat
        }
        added = round(servers["governed"]["p50_ms"] - servers["plain"]["p50_ms"], 3)
        report: dict[str, Any] = {
            "benchmark": "governance_overhead",
            "route": "GET /v1/models",
            "governance": "API-key auth + scope check + RPM/TPM limiter + audit ledger "
            "(SQLite WAL, entry committed before the response)",
            "rate_per_s": args.rate,
            "seconds_per_round": args.seconds,
            "rounds": args.rounds,
            "cpus": os.cpu_count(),
            "load_average_1m_before": load_before,
            "servers": servers,
            "added_p50_ms": added,
            "added_p99_ms": round(servers["governed"]["p99_ms"] - servers["plain"]["p99_ms"], 3),
            "target_added_p50_ms": TARGET_ADDED_P50_MS,
            "meets_target": added < TARGET_ADDED_P50_MS,
            "ledger": ledger_facts(root / "governed", sent["governed"]),
        }
        if args.in_process:
            report["in_process"] = asyncio.run(in_process(root, args.in_process))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
