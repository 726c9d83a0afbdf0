"""Gateway integration tests: real ``llmeco serve`` processes (see ``gateway_helpers``)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from gateway_helpers import served  # noqa: E402

__all__ = ["served"]
