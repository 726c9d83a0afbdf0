"""Client integration tests reuse the server unit tests' fake engine and live-server helper."""

from __future__ import annotations

import sys
from pathlib import Path

UNIT_SERVER = Path(__file__).resolve().parents[2] / "unit" / "server"
if str(UNIT_SERVER) not in sys.path:
    sys.path.insert(0, str(UNIT_SERVER))
