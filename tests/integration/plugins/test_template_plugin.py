"""The template plugin under examples/plugins installs from the checkout and works, a
plugin that fails to import is named while everything else keeps working, and
LLMECO_PLUGINS is an allow-list.

The template is installed with pip (``--target`` a temporary folder, so the test venv is
left as it was) and used from fresh interpreters with that folder on ``sys.path``: entry
points are found through the installed ``.dist-info`` exactly as after ``pip install``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "examples" / "plugins" / "llmeco-example"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

# Runs in a fresh interpreter: reader, task and app of the installed template, through
# llmeco's public entry points (read_file, task_types, build_app).
CHECK = r"""
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from llmeco.data.readers import read_file
from llmeco.evaluation.tasks import task_types
from llmeco.server.app import build_app
from llmeco.settings import Settings
from tests.unit.server.fake_engine import FakeEngine

org = Path(sys.argv[1])
org.write_text("* Opening hours\nWe open at 9.\n", encoding="utf-8")
engine = FakeEngine(reply="Shop opens at nine\nignored second line")
app = build_app(Settings(), {"fake-model": engine})
with TestClient(app) as client:
    ok = client.post("/v1/apps/example/headline", json={"text": "We open at 9 every day."})
    bad = client.post("/v1/apps/example/headline", json={"text": ""})
print(json.dumps({
    "records": read_file(org),
    "task": task_types()["preference"].config.__name__,
    "headline": ok.json(), "status": ok.status_code,
    "bad_status": bad.status_code, "bad_type": bad.json()["error"]["type"],
}))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template installed into a folder, plus a broken plugin distribution beside it."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(TEMPLATE),
        ],
        check=True,
        cwd=tmp_path_factory.mktemp("build"),
    )
    dist = target / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[llmeco]\nbroken = broken_plugin\n")
    (target / "broken_plugin.py").write_text("raise RuntimeError('this plugin is broken')\n")
    return target


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMECO_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    env.update(extra)
    return env


def test_template_registers_its_reader_task_and_app(site: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path / "hours.org")],
        env=_env(site, LLMECO_PLUGINS="example", LLMECO_HOME=str(tmp_path / "home")),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["records"] == [{"text": "# Opening hours\nWe open at 9.", "source": "hours.org"}]
    assert result["task"] == "PreferenceConfig"
    assert result["status"] == 200
    assert result["headline"] == {"headline": "Shop opens at nine", "model": "fake-model"}
    assert (result["bad_status"], result["bad_type"]) == (400, "invalid_request_error")


def test_template_own_tests_pass_when_installed(site: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TEMPLATE / "tests")],
        env=_env(site, LLMECO_PLUGINS="example"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _plugins_list(site: Path, tmp_path: Path, **env: str) -> tuple[int, dict[str, object]]:
    run = subprocess.run(
        [str(BIN / "llmeco"), "plugins", "list", "--json"],
        env=_env(site, LLMECO_HOME=str(tmp_path / "home"), **env),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    return run.returncode, json.loads(run.stdout)


def test_a_broken_plugin_is_named_and_the_rest_still_works(site: Path, tmp_path: Path) -> None:
    code, listing = _plugins_list(site, tmp_path)
    plugins = {p["name"]: p for p in listing["plugins"]}  # type: ignore[union-attr]
    assert code == 1  # a failed plugin makes the command fail, for deployment checks
    assert plugins["broken"]["loaded"] is False
    assert "RuntimeError: this plugin is broken" in plugins["broken"]["error"]
    assert plugins["example"]["loaded"] is True and plugins["example"]["error"] is None
    registered = listing["registered"]
    assert ".org" in registered["readers"] and "preference" in registered["eval_tasks"]  # type: ignore[index]
    # built-ins come from the same registry
    assert registered["apps"]["support"] == "llmeco.server.plugin"  # type: ignore[index]
    assert registered["apps"]["example"] == "example"  # type: ignore[index]
    # and a server still builds and serves with the broken plugin installed
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path / "x.org")],
        env=_env(site, LLMECO_HOME=str(tmp_path / "home")),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "plugin broken (broken_plugin) failed to load" in out.stderr


def test_llmeco_plugins_is_an_allow_list(site: Path, tmp_path: Path) -> None:
    code, listing = _plugins_list(site, tmp_path, LLMECO_PLUGINS="broken")
    plugins = {p["name"]: p for p in listing["plugins"]}  # type: ignore[union-attr]
    assert plugins["example"]["allowed"] is False and plugins["example"]["loaded"] is False
    assert ".org" not in listing["registered"]["readers"]  # type: ignore[index]
    assert code == 1  # broken is allowed, so it is loaded and fails
    code, listing = _plugins_list(site, tmp_path, LLMECO_PLUGINS="")
    plugins = {p["name"]: p for p in listing["plugins"]}  # type: ignore[union-attr]
    assert code == 0
    assert not any(p["loaded"] for p in plugins.values() if not p["builtin"])
    assert all(p["loaded"] for p in plugins.values() if p["builtin"])
