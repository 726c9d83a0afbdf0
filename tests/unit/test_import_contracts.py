"""The layer rule and the no-cycle rule (``[tool.importlinter]`` in pyproject.toml, run by
``make lint``) hold for the package, and really fail on a violation: the same contracts are
run over a small stand-in ``llmeco`` with one upward import and one cycle planted in it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def _contracts() -> str:
    """pyproject's import-linter section, as a standalone config file."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {_toml(v)}" for k, v in config.items() if k != "contracts"]
    for contract in config["contracts"]:
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{k} = {_toml(v)}" for k, v in contract.items()]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace('"', '\\"') + '"'


def _run(config: Path, path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run(
        [str(LINT), "--config", str(config), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=path,
    )


def test_the_package_keeps_both_contracts(tmp_path: Path) -> None:
    config = tmp_path / "contracts.toml"
    config.write_text(_contracts())
    result = _run(config, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_an_upward_import_and_a_cycle_are_both_caught(tmp_path: Path) -> None:
    pkg = tmp_path / "llmeco"
    names = [
        "cli", "server", "apps", "engine", "rag", "training", "evaluation", "observability",
        "modeling", "data", "backup", "registry", "governance", "store", "client", "plugins",
    ]  # fmt: skip
    for name in names:
        (pkg / name).mkdir(parents=True)
        (pkg / name / "__init__.py").write_text("")
    for name in ("__init__", "settings", "errors"):
        (pkg / f"{name}.py").write_text("")
    (pkg / "store" / "db.py").write_text("from llmeco.server import app\n")  # upward
    (pkg / "server" / "app.py").write_text("")
    (pkg / "client" / "api.py").write_text("from llmeco.server import app\n")  # client → server
    (pkg / "apps" / "a.py").write_text("def f():\n    from llmeco.apps import b\n")
    (pkg / "apps" / "b.py").write_text("from llmeco.apps import a\n")  # a <-> b
    config = tmp_path / "contracts.toml"
    config.write_text(_contracts())
    result = _run(config, tmp_path)
    assert result.returncode != 0
    assert "0 kept, 3 broken" in result.stdout, result.stdout
    assert "llmeco.client is not allowed to import llmeco.server" in result.stdout
    assert "llmeco.store is not allowed to import llmeco.server" in result.stdout
    assert "No cycles are allowed in llmeco.apps" in result.stdout
