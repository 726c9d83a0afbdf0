"""The operator metrics of a real app (fake engine): per-key 429s by limit and budget left
(key ids, never secrets), the audit ledger's append latency and checkpoint gauges, readiness,
queue capacity, preemptions, app feedback; and ``llmeco top``'s view computed from scrapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fake_engine import FakeEngine
from prometheus_client.parser import text_string_to_metric_families

from llmeco.engine.protocol import EngineStats
from llmeco.governance.audit import AuditLedger
from llmeco.governance.scopes import Grant
from llmeco.observability.live import Scrape, build_view, quantile
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.settings import Settings

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
async def auth(tmp_path: Path) -> AsyncIterator[Authenticator]:
    a = Authenticator.open(Settings(home=tmp_path))
    yield a
    await a.aclose()


async def test_limits_budgets_audit_and_readiness(tmp_path: Path, auth: Authenticator) -> None:
    settings = Settings(home=tmp_path, max_queue=7)
    fake = FakeEngine(reply="a b c d")
    with AuditLedger.open(settings) as ledger:
        app = build_app(settings, {fake.name: fake}, auth=auth, ledger=ledger)
        tight, tight_token = auth.keys.create("tight", Grant(scopes=frozenset({"chat"}), rpm=2))
        budget, budget_token = auth.keys.create(
            "budget", Grant(scopes=frozenset({"chat"}), daily_tokens=1000)
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            codes = [
                (
                    await c.post(
                        "/v1/chat/completions",
                        json=CHAT,
                        headers={"Authorization": f"Bearer {tight_token}"},
                    )
                ).status_code
                for _ in range(4)
            ]
            r = await c.post(
                "/v1/chat/completions",
                json=CHAT,
                headers={"Authorization": f"Bearer {budget_token}"},
            )
            assert r.status_code == 200
            ledger.checkpoint_now()
            text = (await c.get("/metrics")).text
    assert codes == [200, 200, 429, 429]
    assert value(text, "llmeco_limit_rejections_total", key_id=tight.id, limit="rpm") == 2
    # the 429s are counted on the route they were refused at, before routing
    assert (
        value(
            text,
            "llmeco_requests_total",
            model="",
            route="/v1/chat/completions",
            status="429",
        )
        == 2
    )
    left = value(text, "llmeco_key_budget_remaining_ratio", key_id=budget.id)
    assert left is not None and 0.9 < left < 1.0
    assert tight_token not in text and budget_token not in text  # ids only, never secrets
    assert (value(text, "llmeco_audit_append_seconds_count") or 0) >= 5
    assert value(text, "llmeco_audit_checkpoint_verified") == 1.0
    entries = value(text, "llmeco_audit_entries")
    assert entries is not None and entries >= 5
    assert value(text, "llmeco_audit_checkpointed_entries") == entries
    assert (value(text, "llmeco_audit_last_checkpoint_timestamp_seconds") or 0) > 1.7e9
    assert value(text, "llmeco_ready") == 1.0
    assert value(text, "llmeco_queue_capacity_requests", model="fake-model") == 7.0


async def test_not_ready_while_draining_and_preemptions_counted(tmp_path: Path) -> None:
    fake = FakeEngine()
    fake.stats = lambda: EngineStats(1, 2, 3, 4, preemptions=5)  # type: ignore[method-assign]
    app = build_app(Settings(home=tmp_path), {fake.name: fake})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        app.state.llmeco.draining = True
        text = (await c.get("/metrics")).text
    assert value(text, "llmeco_ready") == 0.0
    assert value(text, "llmeco_num_preemptions_total", model="fake-model") == 5.0
    assert value(text, "llmeco_num_requests_waiting", model="fake-model") == 2.0
    assert value(text, "llmeco_app_feedback_total", app="support", rating="up") == 0.0


def test_quantile_matches_promql_histogram_quantile() -> None:
    # 10 observations: 4 in (0, 0.1], 4 in (0.1, 0.5], 2 in (0.5, +Inf]
    buckets = {0.1: 4.0, 0.5: 8.0, float("inf"): 10.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (1 / 4))
    assert quantile(0.2, buckets) == pytest.approx(0.05)
    assert quantile(0.95, buckets) == 0.5  # in the +Inf bucket: its lower bound, as PromQL
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None


def test_top_view_rates_and_window_percentiles() -> None:
    def scrape(at: float, requests: float, tokens: float, fast: float, slow: float) -> Scrape:
        text = f"""# TYPE llmeco_requests_total counter
llmeco_requests_total{{model="m",route="/v1/chat/completions",status="200"}} {requests}
llmeco_requests_total{{model="m",route="/v1/chat/completions",status="503"}} 1
llmeco_requests_total{{model="",route="/metrics",status="200"}} {requests * 5}
# TYPE llmeco_generation_tokens_total counter
llmeco_generation_tokens_total{{model="m"}} {tokens}
# TYPE llmeco_num_requests_running gauge
llmeco_num_requests_running{{model="m"}} 3
# TYPE llmeco_time_to_first_token_seconds histogram
llmeco_time_to_first_token_seconds_bucket{{model="m",le="0.1"}} {fast}
llmeco_time_to_first_token_seconds_bucket{{model="m",le="1.0"}} {fast + slow}
llmeco_time_to_first_token_seconds_bucket{{model="m",le="+Inf"}} {fast + slow}
llmeco_time_to_first_token_seconds_count{{model="m"}} {fast + slow}
llmeco_time_to_first_token_seconds_sum{{model="m"}} 0
"""
        return Scrape.parse(text, at)

    before = scrape(10.0, requests=100, tokens=1000, fast=100, slow=0)
    now = scrape(12.0, requests=110, tokens=1400, fast=100, slow=10)
    view = build_view(now, before, None, "no key")
    assert view.requests_per_s == pytest.approx(5.0)  # /metrics scrapes are left out
    assert view.errors_per_s == 0.0
    (m,) = view.models
    assert m.model == "m" and m.running == 3 and m.tokens_out_per_s == pytest.approx(200.0)
    # the window's TTFTs were all slow, though most since start were fast
    assert m.ttft_p50 is not None and m.ttft_p50 > 0.1
    assert view.keys is None and view.keys_note == "no key"
