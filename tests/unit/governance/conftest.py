"""Governance unit tests reuse the server tests' fake engine (see gov_helpers)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _p in (_HERE, _HERE.parent / "server"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from gov_helpers import auth, fake, gapp, gclient, gsettings, root  # noqa: E402

__all__ = ["auth", "fake", "gapp", "gclient", "gsettings", "root"]
