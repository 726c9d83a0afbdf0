"""deploy/prometheus/alerts.yml: valid rules, each alert unit-tested by promtool, and every
metric the rules read is one the server exports (the README's metrics table)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from deploy_helpers import DEPLOY, require_tool

ALERTS = DEPLOY / "prometheus" / "alerts.yml"

#: Metrics that Prometheus itself makes (not the server).
PROMETHEUS_OWN = {"up"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], capture_output=True, text=True, timeout=120
    )


def test_rules_check() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_and_the_tests_pass() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((DEPLOY / "prometheus/alerts.test.yml").read_text())
    tested = {
        a["alertname"]
        for t in tests["tests"]
        for a in t.get("alert_rule_test", [])
        if a.get("exp_alerts")
    }
    assert alerts == tested, f"alerts never shown firing: {sorted(alerts - tested)}"
    result = promtool("test", "rules", str(DEPLOY / "prometheus/alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: raising the error-rate threshold silences the alert."""
    (tmp_path / "alerts.yml").write_text(
        ALERTS.read_text().replace("> 0.05\n        for: 2m", "> 0.5\n        for: 2m")
    )
    (tmp_path / "alerts.test.yml").write_text((DEPLOY / "prometheus/alerts.test.yml").read_text())
    result = promtool("test", "rules", str(tmp_path / "alerts.test.yml"))
    assert result.returncode != 0
    assert "LlmecoHighErrorRate" in result.stdout + result.stderr


def rule_metrics() -> set[str]:
    """Metric names the rules' expressions read (not recording rules, not functions)."""
    rules = yaml.safe_load(ALERTS.read_text())
    names: set[str] = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            expr = re.sub(r'"[^"]*"', '""', rule["expr"])
            names |= set(re.findall(r"\b(llmeco_[a-z_]+)\b", expr))
    return names


def test_rules_read_only_exported_metrics() -> None:
    from llmeco.observability.metrics import ServerMetrics

    exported = ServerMetrics(lambda: {}).registry  # families the server registers
    families = {m.name for m in exported.collect()}
    # engine and ledger gauges come from collectors that need an engine or a ledger
    families |= {
        "llmeco_num_requests_running",
        "llmeco_num_requests_waiting",
        "llmeco_kv_cache_usage_ratio",
        "llmeco_queue_capacity_requests",
        "llmeco_num_preemptions",
        "llmeco_audit_entries",
        "llmeco_audit_checkpointed_entries",
        "llmeco_audit_last_checkpoint_timestamp_seconds",
        "llmeco_audit_checkpoint_verified",
    }
    samples = set()
    for name in families:
        samples |= {name, f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    assert rule_metrics() - PROMETHEUS_OWN <= samples, sorted(rule_metrics() - samples)
