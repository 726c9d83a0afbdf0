"""Load test of ``llmeco serve`` with live scrapes, then an induced error burst.

Loopback only and bounded in time. It starts its own Redis (shared limits), ``llmeco serve``
(the packaged default model, API keys on) and, when Debian's ``prometheus`` is installed, a
real Prometheus scraping the server every second. Then:

1. ``--seconds`` of mixed traffic: streaming chat completions (key ``load``), support-assistant
   questions with feedback (``support:acme``), a key with a small RPM limit that gets 429s,
   a key with a small daily budget; ``/metrics`` is scraped every ``--scrape-interval``;
2. ``--burst-seconds`` of errors: its Redis is stopped, so every keyed request gets 503
   (limits cannot be checked, and llmeco refuses rather than serve unmetered).

It writes every scrape (JSON lines: time, phase, exposition text) to ``--out-dir``, evaluates
each query of ``deploy/grafana/llmeco.json`` in Prometheus (series count per panel target),
optionally renders the dashboard from those queries as a PNG (``--png``), and prints one JSON
summary (also written to ``--results``).

    python benchmarks/loadtest.py --seconds 60 --burst-seconds 20 \\
        --results benchmarks/results-loadtest.json --png docs/dashboard.png
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "llmeco.json"
HANDBOOK = ROOT / "tests" / "data" / "acme_handbook.md"
QUESTIONS = (
    "How long do refunds take?",
    "When does the Calder shop open?",
    "How long are batteries covered?",
    "Can I pay with bitcoin on the moon?",  # nothing in the handbook: a hand-off
)
#: What ``$__rate_interval`` becomes when the dashboard's queries run on 1 s scrapes.
RATE_INTERVAL = "10s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    """Run ``llmeco ARGS`` and return its stdout."""
    out = subprocess.run(
        [sys.executable, "-m", "llmeco", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return out.stdout.strip()


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


@contextlib.contextmanager
def process(
    cmd: list[str], env: dict[str, str] | None, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (output to ``log``) for the block; SIGTERM it after, then kill."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(40)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def panel_queries(dashboard: Path = DASHBOARD) -> list[dict[str, str]]:
    """Every query of the dashboard: panel title, refId, PromQL (Grafana variables filled)."""
    data = json.loads(dashboard.read_text())
    out = []
    for panel in data["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
            out.append(
                {
                    "panel": panel["title"],
                    "ref": target["refId"],
                    "expr": expr,
                    "legend": target.get("legendFormat", ""),
                }
            )
    return out


# ---- traffic --------------------------------------------------------------------------------


class Traffic:
    """The load's clients and what they saw, by phase."""

    def __init__(self, url: str, keys: dict[str, str], seed: int = 0) -> None:
        self.url = url
        self.keys = keys
        self.phase = "load"
        self.status: dict[str, Counter[int]] = {"load": Counter(), "burst": Counter()}
        self.ttft: list[float] = []
        self.rng = random.Random(seed)
        self.answer_ids: list[str] = []

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    def count(self, status: int) -> None:
        self.status[self.phase][status] += 1

    async def chat(self, client: httpx.AsyncClient, stop: float) -> None:
        """Streaming chat completions, one after another."""
        while time.monotonic() < stop:
            body = {
                "model": "default",
                "messages": [{"role": "user", "content": f"Count to {self.rng.randint(3, 9)}."}],
                "max_tokens": 16,
                "stream": True,
            }
            start = time.perf_counter()
            first = True
            try:
                async with client.stream(
                    "POST", "/v1/chat/completions", json=body, headers=self.auth("load")
                ) as r:
                    self.count(r.status_code)
                    async for line in r.aiter_lines():
                        if first and line.startswith("data: {"):
                            self.ttft.append(time.perf_counter() - start)
                            first = False
            except httpx.HTTPError:
                self.count(0)
                await asyncio.sleep(0.2)
            if self.phase == "burst":
                await asyncio.sleep(0.05)

    async def limited(self, client: httpx.AsyncClient, stop: float) -> None:
        """A key with 30 requests per minute asking 5 times a second: 429s."""
        while time.monotonic() < stop:
            r = await client.get("/v1/models", headers=self.auth("tight"))
            self.count(r.status_code)
            await asyncio.sleep(0.2)

    async def budgeted(self, client: httpx.AsyncClient, stop: float) -> None:
        """A key with a small daily token budget: its share left falls with each call."""
        while time.monotonic() < stop:
            body = {
                "model": "default",
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 8,
            }
            r = await client.post("/v1/chat/completions", json=body, headers=self.auth("budget"))
            self.count(r.status_code)
            await asyncio.sleep(1.0)

    async def support(self, client: httpx.AsyncClient, stop: float) -> None:
        """Support-assistant questions (some handed off) and feedback on the answers."""
        i = 0
        while time.monotonic() < stop:
            question = QUESTIONS[i % len(QUESTIONS)]
            i += 1
            body = {
                "model": "support:acme",
                "messages": [{"role": "user", "content": question}],
                "max_tokens": 24,
            }
            r = await client.post("/v1/chat/completions", json=body, headers=self.auth("load"))
            self.count(r.status_code)
            if r.status_code == 200:
                rid = r.json()["id"]
                rating = "up" if i % 3 else "down"
                f = await client.post(
                    "/v1/feedback",
                    json={"response_id": rid, "rating": rating},
                    headers=self.auth("load"),
                )
                self.count(f.status_code)
            await asyncio.sleep(0.5)


async def scrape(
    client: httpx.AsyncClient, every: float, stop: asyncio.Event, traffic: Traffic, out: list[Any]
) -> None:
    """``/metrics`` every ``every`` seconds until ``stop``."""
    while not stop.is_set():
        start = time.monotonic()
        with contextlib.suppress(httpx.HTTPError):
            r = await client.get("/metrics")
            out.append({"t": time.time(), "phase": traffic.phase, "text": r.text})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, every - (time.monotonic() - start)))


async def drive(
    url: str,
    keys: dict[str, str],
    seconds: float,
    burst: float,
    every: float,
    redis: subprocess.Popen[bytes],
    concurrency: int,
) -> tuple[Traffic, list[Any]]:
    traffic = Traffic(url, keys)
    scrapes: list[Any] = []
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        scraper = asyncio.create_task(scrape(client, every, stop, traffic, scrapes))
        end = time.monotonic() + seconds
        await asyncio.gather(
            *(traffic.chat(client, end) for _ in range(concurrency)),
            traffic.limited(client, end),
            traffic.budgeted(client, end),
            traffic.support(client, end),
        )
        # the error burst: the limits store goes away
        traffic.phase = "burst"
        redis.send_signal(signal.SIGTERM)
        redis.wait(10)
        end = time.monotonic() + burst
        await asyncio.gather(*(traffic.chat(client, end) for _ in range(concurrency)))
        await asyncio.sleep(every)  # one more scrape after the last request
        stop.set()
        await scraper
    return traffic, scrapes


# ---- Prometheus -----------------------------------------------------------------------------


def prometheus_config(target: str, every: float) -> str:
    return (
        f"global:\n  scrape_interval: {every:g}s\n  evaluation_interval: {every:g}s\n"
        "scrape_configs:\n  - job_name: llmeco\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )


def query(prom: str, expr: str, at: float) -> list[Any]:
    r = httpx.get(prom + "/api/v1/query", params={"query": expr, "time": at}, timeout=30)
    r.raise_for_status()
    result: list[Any] = r.json()["data"]["result"]
    return result


def query_range(prom: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    r = httpx.get(
        prom + "/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": step},
        timeout=30,
    )
    r.raise_for_status()
    result: list[Any] = r.json()["data"]["result"]
    return result


def evaluate_dashboard(prom: str, at: float) -> list[dict[str, Any]]:
    """Each dashboard query at ``at`` (the end of the load phase): how many series."""
    rows = []
    for q in panel_queries():
        result = query(prom, q["expr"], at)
        rows.append({**q, "series": len(result)})
    return rows


def render_png(prom: str, start: float, end: float, path: Path, every: float) -> None:
    """The dashboard's panels drawn with matplotlib from Prometheus' answers to its queries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(DASHBOARD.read_text())
    panels = [p for p in data["panels"] if p.get("targets")]
    cols = 4
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 5, rows * 2.8))
    for ax, panel in zip(axes.flat, panels, strict=False):
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
            for series in query_range(prom, expr, start, end, every):
                xs = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                labels = series["metric"]
                legend = re.sub(
                    r"\{\{(\w+)\}\}",
                    lambda m, labels=labels: str(labels.get(m.group(1), "")),
                    target.get("legendFormat", ""),
                )
                ax.plot(xs, ys, label=legend[:40], linewidth=1.2)
        ax.set_title(panel["title"], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("seconds", fontsize=7)
        if ax.lines:
            ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        "llmeco dashboard (deploy/grafana/llmeco.json), queries run by Prometheus on a "
        "load test of llmeco serve; the last part is the induced error burst",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ---- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="Load phase length.")
    ap.add_argument("--burst-seconds", type=float, default=20.0, help="Error burst length.")
    ap.add_argument("--scrape-interval", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=3, help="Streaming chat clients.")
    ap.add_argument("--out-dir", type=Path, default=None, help="Scrapes and logs (default: temp).")
    ap.add_argument(
        "--models-from",
        type=Path,
        default=None,
        help="An LLMECO_HOME whose converted models/ to reuse (skips converting).",
    )
    ap.add_argument("--results", type=Path, default=None, help="Write the summary JSON here.")
    ap.add_argument("--png", type=Path, default=None, help="Render the dashboard to this PNG.")
    args = ap.parse_args(argv)

    out = args.out_dir or Path(tempfile.mkdtemp(prefix="llmeco-load-"))
    out.mkdir(parents=True, exist_ok=True)
    home = out / "home"
    home.mkdir(exist_ok=True)
    if (
        args.models_from
        and (args.models_from / "models").is_dir()
        and not (home / "models").exists()
    ):
        (home / "models").symlink_to((args.models_from / "models").resolve())
    redis_port, port, prom_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "LLMECO_HOME": str(home),
        "LLMECO_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "LLMECO_THREADS": os.environ.get("LLMECO_THREADS", "1"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "LLMECO_AUDIT_CHECKPOINT_SECONDS": "2",
        "LLMECO_MAX_NUM_SEQS": "8",
        "LLMECO_MAX_QUEUE": "16",
        "LLMECO_KV_CACHE_TOKENS": "4096",
    }
    keys = {
        "load": cli(env, "keys", "create", "--name", "load", "--scopes", "chat"),
        "tight": cli(env, "keys", "create", "--name", "tight", "--scopes", "models", "--rpm", "30"),
        "budget": cli(
            env, "keys", "create", "--name", "budget", "--scopes", "chat", "--daily-tokens", "20000"
        ),
    }
    # The knowledge base is filled while the server starts (the keys above migrated the store).
    kb_cmd = [sys.executable, "-m", "llmeco", "kb", "add", "--create", "acme", str(HANDBOOK)]
    url = f"http://127.0.0.1:{port}"
    prom = f"http://127.0.0.1:{prom_port}"
    prometheus = shutil.which("prometheus")
    summary: dict[str, Any] = {
        "bench": "loadtest",
        "seconds": args.seconds,
        "burst_seconds": args.burst_seconds,
        "scrape_interval": args.scrape_interval,
        "concurrency": args.concurrency,
    }
    redis_cmd = [
        "redis-server",
        "--port",
        str(redis_port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(out),
    ]
    serve_cmd = [
        sys.executable,
        "-m",
        "llmeco",
        "serve",
        "--model",
        "default",
        "--port",
        str(port),
        "--shutdown-timeout",
        "5",
    ]
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(process(redis_cmd, None, out / "redis.log"))
        server = stack.enter_context(process(serve_cmd, env, out / "server.log"))
        started = time.monotonic()
        kb = stack.enter_context(process(kb_cmd, env, out / "kb.log"))
        wait_http(url + "/ready", server, 600)
        if kb.wait(600) != 0:
            raise RuntimeError(f"kb add failed: {(out / 'kb.log').read_text()[-2000:]}")
        summary["startup_s"] = round(time.monotonic() - started, 1)
        if prometheus:
            (out / "prometheus.yml").write_text(
                prometheus_config(f"127.0.0.1:{port}", args.scrape_interval)
            )
            prom_proc = stack.enter_context(
                process(
                    [
                        prometheus,
                        f"--config.file={out / 'prometheus.yml'}",
                        f"--storage.tsdb.path={out / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                    ],
                    None,
                    out / "prometheus.log",
                )
            )
            wait_http(prom + "/-/ready", prom_proc, 60)
        load_start = time.time()
        traffic, scrapes = asyncio.run(
            drive(
                url,
                keys,
                args.seconds,
                args.burst_seconds,
                args.scrape_interval,
                redis,
                args.concurrency,
            )
        )
        burst_start = next((s["t"] for s in scrapes if s["phase"] == "burst"), time.time())
        end = time.time()
        if prometheus:
            time.sleep(2 * args.scrape_interval)  # the last scrapes land in the TSDB
            # at the end of the load phase (healthy) and at the end of the burst
            rows = evaluate_dashboard(prom, burst_start)
            summary["dashboard_queries"] = rows
            summary["dashboard_queries_empty"] = [r for r in rows if not r["series"]]
            burst_rows = evaluate_dashboard(prom, end)
            summary["dashboard_queries_empty_after_burst"] = [
                r for r in burst_rows if not r["series"]
            ]
            ratio = query(
                prom,
                next(q["expr"] for q in panel_queries() if q["panel"] == "5xx error ratio"),
                end,
            )
            summary["error_ratio_end_of_burst"] = float(ratio[0]["value"][1]) if ratio else None
            if args.png:
                render_png(prom, load_start, end, args.png, args.scrape_interval)
                summary["png"] = str(args.png)
        else:
            summary["dashboard_queries"] = None
            summary["prometheus"] = "not installed (apt-get install -y prometheus)"
    scrape_file = out / "scrapes.jsonl"
    with scrape_file.open("w") as f:
        for s in scrapes:
            f.write(json.dumps(s) + "\n")
    ttft = sorted(traffic.ttft)
    summary.update(
        {
            "scrapes": len(scrapes),
            "scrapes_file": str(scrape_file),
            "burst_started": burst_start,
            "status_load": {str(k): v for k, v in sorted(traffic.status["load"].items())},
            "status_burst": {str(k): v for k, v in sorted(traffic.status["burst"].items())},
            "client_ttft_p50_s": round(ttft[len(ttft) // 2], 3) if ttft else None,
            "client_ttft_p95_s": round(ttft[int(len(ttft) * 0.95)], 3) if ttft else None,
            "streams": len(ttft),
        }
    )
    text = json.dumps(summary)
    print(text)
    if args.results:
        args.results.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
