"""Must-show of the operations issue, on a real ``llmeco serve`` under load:

* every metric the Grafana dashboard and the alert rules read is in the server's scrapes;
* every dashboard query, run by a real Prometheus that scraped the server each second,
  returns series (benchmarks/loadtest.py evaluates them);
* the induced error burst (the limits store stops: 503s) fires LlmecoHighErrorRate when
  alerts.yml is evaluated by ``promtool test rules`` on those very scrapes, and it is silent
  on the healthy part.

The scrapes are replayed to promtool one per minute of rule time (the load lasts seconds;
ratios such as the error rate do not depend on the time scale).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
INSTANCE = "llmeco-0"


def need(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed; install it with: {install}")
    return path


@pytest.fixture(scope="module")
def load(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One bounded load test (15 s of traffic, 8 s of errors) and its scrapes."""
    need("promtool", "apt-get install -y prometheus")
    need("prometheus", "apt-get install -y prometheus")
    need("redis-server", "apt-get install -y redis-server")
    out = tmp_path_factory.mktemp("load")
    home = default_model_dir.parents[1]  # the cached LLMECO_HOME holding models/
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/loadtest.py"), "--seconds", "15",
         "--burst-seconds", "8", "--out-dir", str(out), "--models-from", str(home)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    summary["scrapes_list"] = [
        json.loads(line) for line in Path(summary["scrapes_file"]).read_text().splitlines()
    ]
    return summary


def exported_samples(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(llmeco_[a-z_]+)\b", re.sub(r'"[^"]*"', '""', expr)))


def test_traffic_had_both_phases(load: dict[str, Any]) -> None:
    assert load["status_load"].get("200", 0) > 10
    assert load["status_load"].get("429", 0) > 0  # the tight key's RPM limit
    assert "500" not in load["status_load"] and "503" not in load["status_load"]
    assert load["status_burst"].get("503", 0) > 10
    assert load["scrapes"] >= 20


def test_dashboard_and_alert_metrics_are_all_exported(load: dict[str, Any]) -> None:
    last_load = [s for s in load["scrapes_list"] if s["phase"] == "load"][-1]
    samples = exported_samples(last_load["text"])
    dashboard = json.loads((DEPLOY / "grafana/llmeco.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 25
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = set().union(*(metric_names(e) for e in exprs))
    missing = sorted(used - samples)
    assert not missing, f"queried but not exported: {missing}"


def test_every_dashboard_query_returns_series_in_prometheus(load: dict[str, Any]) -> None:
    rows = load["dashboard_queries"]
    assert rows, "Prometheus did not evaluate the dashboard"
    empty = [f"{r['panel']} / {r['ref']}: {r['expr']}" for r in rows if not r["series"]]
    assert not empty, empty
    assert not load["dashboard_queries_empty_after_burst"]
    assert load["error_ratio_end_of_burst"] > 0.5


def series_of(scrapes: list[dict[str, Any]]) -> list[dict[str, str]]:
    """promtool input_series: one value per scrape ('_' where a series was absent)."""
    table: dict[str, list[str]] = {}
    for i, scrape in enumerate(scrapes):
        for family in text_string_to_metric_families(scrape["text"]):
            for s in family.samples:
                labels = {**s.labels, "instance": INSTANCE, "job": "llmeco"}
                body = ",".join(
                    f'{k}="{v}"'.replace("\\", "\\\\") for k, v in sorted(labels.items())
                )
                key = f"{s.name}{{{body}}}"
                table.setdefault(key, ["_"] * len(scrapes))[i] = repr(float(s.value))
    return [{"series": k, "values": " ".join(v)} for k, v in table.items()]


def test_error_burst_fires_the_error_rate_alert(load: dict[str, Any], tmp_path: Path) -> None:
    scrapes = load["scrapes_list"]
    first_burst = next(i for i, s in enumerate(scrapes) if s["phase"] == "burst")
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    for group in rules["groups"]:  # the rules as written, less their (value-bearing) texts
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    last = len(scrapes) - 1
    firing = [{"exp_labels": {"instance": INSTANCE, "severity": "page"}}]
    test = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series_of(scrapes),
                "alert_rule_test": [
                    {"eval_time": f"{first_burst - 1}m", "alertname": "LlmecoHighErrorRate",
                     "exp_alerts": []},
                    {"eval_time": f"{last}m", "alertname": "LlmecoHighErrorRate",
                     "exp_alerts": firing},
                ],
            }
        ],
    }  # fmt: skip
    (tmp_path / "burst.test.yml").write_text(yaml.safe_dump(test))
    promtool = need("promtool", "apt-get install -y prometheus")
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "burst.test.yml")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
