"""Backup unit tests: the populated home and its backup come from backup_helpers."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from backup_helpers import source  # noqa: E402

__all__ = ["source"]
