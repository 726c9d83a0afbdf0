"""deploy/grafana/llmeco.json without a server: a well-formed dashboard (unique ids, panels
on the grid without overlaps, every query on the provisioned datasource), covering what the
issue lists, and reading only metric families the server registers. The integration test
(tests/integration/deploy/) runs every query in Prometheus against a loaded server."""

from __future__ import annotations

import json
import re
from typing import Any

from deploy_helpers import DEPLOY

DASHBOARD = DEPLOY / "grafana" / "llmeco.json"


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_well_formed_and_on_the_provisioned_datasource() -> None:
    data = load()
    assert data["uid"] == "llmeco"
    panels = data["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine
        for t in p.get("targets", []):
            assert t["expr"].strip() and t["refId"]
            assert t["datasource"]["uid"] == "${datasource}"
    (var,) = [v for v in data["templating"]["list"] if v["name"] == "datasource"]
    assert var["query"] == "prometheus"
    provisioned = (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    assert "type: prometheus" in provisioned


def test_covers_what_operators_watch() -> None:
    titles = " | ".join(p["title"].lower() for p in load()["panels"])
    topics = ("requests/s", "p95", "first token", "inter-token", "queue", "kv cache", "error")
    topics += ("429", "budget", "hand-off", "feedback", "replicas", "memory")
    for topic in topics:
        assert topic in titles, topic


def test_queries_read_only_registered_metric_families() -> None:
    from llmeco.observability.metrics import ServerMetrics

    registered = {m.name for m in ServerMetrics(lambda: {}).registry.collect()}
    scraped_time = {  # collectors that need an engine or a ledger to report
        "llmeco_num_requests_running", "llmeco_num_requests_waiting",
        "llmeco_kv_cache_usage_ratio", "llmeco_queue_capacity_requests",
        "llmeco_num_preemptions", "llmeco_audit_last_checkpoint_timestamp_seconds",
    }  # fmt: skip
    names = set()
    for p in load()["panels"]:
        for t in p.get("targets", []):
            names |= set(re.findall(r"\b(llmeco_[a-z_]+)\b", re.sub(r'"[^"]*"', '""', t["expr"])))
    families = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in names}
    assert families <= registered | scraped_time, sorted(families - registered - scraped_time)
