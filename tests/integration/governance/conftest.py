"""Governance integration tests share the unit tests' helpers and the fake engine."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[2]
for _p in (_TESTS / "unit" / "governance", _TESTS / "unit" / "server"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from gov_helpers import auth, fake, gapp, gclient, gsettings, root  # noqa: E402

__all__ = ["auth", "fake", "gapp", "gclient", "gsettings", "root"]
