"""deploy/systemd/llmeco.service: ``systemd-analyze verify`` finds nothing wrong but the
missing install (/opt/llmeco is created on the VM), and the unit drains like the image."""

from __future__ import annotations

import configparser
import subprocess

from deploy_helpers import DEPLOY, require_tool

UNIT = DEPLOY / "systemd" / "llmeco.service"


def test_systemd_analyze_verify() -> None:
    tool = require_tool("systemd-analyze")
    result = subprocess.run(
        [tool, "verify", "--man=no", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "/opt/llmeco/bin/llmeco is not executable" not in line
    ]
    assert not problems, problems


def test_unit_runs_serve_as_a_user_and_drains() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["User"] == "llmeco"
    assert service["ExecStart"].startswith("/opt/llmeco/bin/llmeco serve ")
    assert service["KillSignal"] == "SIGTERM"
    timeout = int(service["ExecStart"].split("--shutdown-timeout ")[1].split()[0])
    assert int(service["TimeoutStopSec"]) > timeout  # systemd waits for the drain
    assert service["EnvironmentFile"].startswith("/etc/")
    assert unit["Install"]["WantedBy"] == "multi-user.target"
