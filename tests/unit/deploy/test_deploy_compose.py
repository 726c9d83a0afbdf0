"""deploy/compose.yaml: valid against the Compose specification's JSON schema (vendored by
check-jsonschema; ``docker compose config`` when the compose plugin is installed), and wired
as documented: two llmeco replicas on PostgreSQL + Redis, Prometheus scraping them with the
alert rules, Grafana provisioned with the dashboard, secrets only from the env file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import DEPLOY, require_tool

COMPOSE = DEPLOY / "compose.yaml"


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_valid_against_the_compose_spec_schema() -> None:
    from check_jsonschema.cli.main_command import main

    with pytest.raises(SystemExit) as exit_:
        main(["--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert exit_.value.code == 0


def test_invalid_compose_is_refused(tmp_path: Path) -> None:
    """The schema check can fail: a misspelt key is caught."""
    from check_jsonschema.cli.main_command import main

    bad = tmp_path / "compose.yaml"
    bad.write_text(COMPOSE.read_text().replace("replicas: 2", "replicaz: 2"))
    with pytest.raises(SystemExit) as exit_:
        main(["--builtin-schema", "vendor.compose-spec", str(bad)])
    assert exit_.value.code != 0


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed (the schema test covers the file)",
)
def test_docker_compose_config(tmp_path: Path) -> None:  # pragma: no cover - needs the plugin
    env = DEPLOY / "llmeco.env"
    created = not env.exists()
    if created:
        shutil.copy(DEPLOY / "llmeco.env.example", env)
    try:
        subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "-q"], check=True)
    finally:
        if created:
            env.unlink()


def test_services_are_wired_as_documented() -> None:
    services = load()["services"]
    assert set(services) == {"llmeco", "postgres", "redis", "prometheus", "grafana"}
    llmeco = services["llmeco"]
    assert llmeco["deploy"]["replicas"] == 2
    assert llmeco["build"]["dockerfile"] == "deploy/Dockerfile"
    assert {"postgres", "redis"} <= set(llmeco["depends_on"])
    assert any(v.endswith(":/data") for v in llmeco["volumes"])
    env = llmeco["environment"]
    assert env["LLMECO_REDIS_URL"].startswith("redis://redis:")
    # no secret is written in the compose file itself: they come from the env file
    text = COMPOSE.read_text()
    assert not re.search(r"(SECRET|PASSWORD|SIGNING|ENCRYPTION)[A-Z_]*\s*:", text)
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "llmeco.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for needed in (
        "LLMECO_SECRET_KEY",
        "LLMECO_DATABASE_URL",
        "LLMECO_AUDIT_SIGNING_KEY",
        "LLMECO_ENCRYPTION_KEYS",
        "POSTGRES_PASSWORD",
        "GF_SECURITY_ADMIN_PASSWORD",
    ):
        assert needed in example, needed
    assert "@postgres:5432/" in example["LLMECO_DATABASE_URL"]


def test_mounted_files_exist_and_prometheus_scrapes_the_replicas() -> None:
    services = load()["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), volume
    prom = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "llmeco")
    assert job["dns_sd_configs"][0]["names"] == ["llmeco"]  # one address per replica
    assert job["dns_sd_configs"][0]["port"] == 8000
    assert prom["rule_files"] == ["alerts.yml"]
    dashboards = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/llmeco.yml").read_text())
    path = dashboards["providers"][0]["options"]["path"]
    assert any(v.endswith(f":{path}/llmeco.json:ro") for v in services["grafana"]["volumes"])


def test_prometheus_config_checks() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
