"""Client unit tests build the server app over the server tests' fake engine."""

from __future__ import annotations

import sys
from pathlib import Path

_UNIT = Path(__file__).resolve().parents[1]
for _p in (_UNIT / "server", _UNIT / "governance"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
