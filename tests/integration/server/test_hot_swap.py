"""Hot swap under load (issue 6, must-show 3), through the real ``llmeco serve``.

Three versions of a tiny random Llama are registered; each can only emit tokens of one
character class (lowercase words, uppercase words, punctuation), so the text of a response
shows which version produced every one of its tokens, whatever the batch did to the
numerics. The server follows ``tiny@production``; 16 clients stream completions for 24 s
(``LLMECO_HOT_SWAP_SECONDS`` sets another length) while production moves 1 → 2 → 3. Every
request must succeed, every response must come wholly from one version (its text in one class
and its ``system_fingerprint`` naming that version on every chunk), and each version must
have answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from llmeco.registry.registry import Registry
from llmeco.settings import Settings

pytestmark = pytest.mark.slow

DURATION = float(os.environ.get("LLMECO_HOT_SWAP_SECONDS", "24"))
CLIENTS = 16
CLASSES = {
    1: re.compile(r"^[a-z]{2,}$"),
    2: re.compile(r"^[A-Z]{2,}$"),
    3: re.compile(r"^[!#%&*+,\-./:;<=>?@^_|~]{1,}$"),
}


def _only_class(src: Path, dst: Path, pattern: re.Pattern[str]) -> Path:
    """``src`` whose ``lm_head`` keeps random rows only for tokens matching ``pattern``.

    Every other logit is exactly 0 while the allowed ones are ~N(0, 4), so greedy decoding
    always picks an allowed token (hundreds of them: the chance that all are negative is
    below 2^-100) and never the end-of-sequence token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src)
    allowed = [
        i for i in range(len(tokenizer)) if pattern.match(tokenizer.decode([i]) or "") is not None
    ]
    assert len(allowed) >= 100, (pattern.pattern, len(allowed))
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    with torch.no_grad():
        weight = model.lm_head.weight
        keep = weight[allowed].clone()
        weight.zero_()
        weight[allowed] = keep
    model.save_pretrained(dst)
    tokenizer.save_pretrained(dst)
    return dst


def _start(home: Path) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "LLMECO_HOME": str(home),
        "LLMECO_DEVICE": "cpu",
        "LLMECO_MODEL_POLL_SECONDS": "0.5",
        "LLMECO_KV_CACHE_TOKENS": "4096",
        "LLMECO_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmeco.cli.serve",
            "--model",
            "tiny@production",
            "--port",
            "0",
            "--no-auth",
            "--no-embeddings",
            "--shutdown-timeout",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        found = re.search(r"at (http://\S+?)/\s*$", line)
        if found:
            return proc, found.group(1)
        assert time.monotonic() < deadline, "server did not start"
    raise AssertionError(f"server exited: {proc.wait()}")


async def _client(c: httpx.AsyncClient, stop: float, results: list[dict[str, Any]]) -> None:
    body = {
        "model": "tiny@production",
        "prompt": "The next version says",
        "max_tokens": 12,
        "temperature": 0,
        "stream": True,
    }
    while time.monotonic() < stop:
        record: dict[str, Any] = {"status": None, "text": "", "fingerprints": set(), "done": False}
        try:
            async with c.stream("POST", "/v1/completions", json=body) as r:
                record["status"] = r.status_code
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[len("data: ") :]
                    if data == "[DONE]":
                        record["done"] = True
                        continue
                    event = json.loads(data)
                    if "error" in event:
                        record["error"] = event["error"]
                        continue
                    record["fingerprints"].add(event["system_fingerprint"])
                    record["text"] += "".join(ch["text"] for ch in event["choices"])
        except httpx.HTTPError as exc:
            record["error"] = repr(exc)
        results.append(record)


def _version_of(text: str) -> int | None:
    matches = [v for v, pattern in CLASSES.items() if pattern.match(text)]
    return matches[0] if len(matches) == 1 else None


async def _load_test(url: str, registry: Registry) -> tuple[list[dict[str, Any]], list[float]]:
    results: list[dict[str, Any]] = []
    moves: list[float] = []
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        clients = [
            asyncio.create_task(_client(c, start + DURATION, results)) for _ in range(CLIENTS)
        ]
        for version, at in ((2, DURATION / 3), (3, 2 * DURATION / 3)):
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            await asyncio.to_thread(
                registry.set_alias, "tiny", version, "production", actor="test", action="promote"
            )
            moves.append(time.monotonic() - start)
        await asyncio.gather(*clients)
    return results, moves


def test_production_moves_twice_under_load(tiny_llama_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    registry = Registry.open(Settings(home=home))
    for version, pattern in CLASSES.items():
        directory = _only_class(tiny_llama_dir, tmp_path / f"v{version}", pattern)
        registry.register(directory, "tiny", actor="test")
    registry.set_alias("tiny", 1, "production", actor="test")
    proc, url = _start(home)
    try:
        results, moves = asyncio.run(_load_test(url, registry))
        status = httpx.get(f"{url}/admin/models", timeout=10).json()
        deadline = time.monotonic() + 10
        while status[0]["draining"] and time.monotonic() < deadline:
            time.sleep(0.2)
            status = httpx.get(f"{url}/admin/models", timeout=10).json()
        card = httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]
    finally:
        proc.terminate()
        proc.wait(30)
        registry.store.close()

    failed = [r for r in results if r["status"] != 200 or "error" in r or not r["done"]]
    assert failed == [], failed[:3]
    per_version: Counter[int] = Counter()
    for r in results:
        version = _version_of(r["text"])
        assert version is not None, r  # every token from one version's vocabulary
        assert r["fingerprints"] == {f"tiny:{version}"}, r
        per_version[version] += 1
    print(json.dumps({"requests": len(results), "per_version": per_version, "moves_s": moves}))
    assert set(per_version) == {1, 2, 3}, per_version
    assert status[0]["version"] == "tiny:3" and status[0]["swaps"] == 2
    assert status[0]["draining"] == []  # both replaced versions were freed
    assert card["id"] == "tiny" and card["version"] == "tiny:3"
    swaps = [(e["previous_version"], e["version"]) for e in _ledger(home, "model.swap")]
    assert swaps == [("tiny:1", "tiny:2"), ("tiny:2", "tiny:3")]


def _ledger(home: Path, action: str) -> list[dict[str, Any]]:
    """Details of the audit ledger's admin entries with ``action``."""
    from sqlalchemy import select

    from llmeco.governance.audit.tables import AuditEntry

    store = Registry.open(Settings(home=home)).store
    with store.session() as s:
        payloads = [json.loads(p) for p in s.execute(select(AuditEntry.payload)).scalars()]
    store.close()
    return [p.get("details", {}) for p in payloads if p.get("action") == action]
