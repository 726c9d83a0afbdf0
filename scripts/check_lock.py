"""Check that the running environment holds exactly what the lock files pin.

``make test`` runs this after building ``.venv`` from ``requirements/*.lock``: a package
missing, at another version, or present without being locked fails the run, so the tests
always run against the versions that were tested (and that a new clone installs).

Usage: ``python scripts/check_lock.py [LOCK ...]`` (default: every ``requirements/*.lock``).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Installed from the working tree itself (``pip install -e .`` and the plugin apps under
#: ``plugins/``), so never in a lock.
UNLOCKED = {"llmeco"} | {path.name for path in (ROOT / "plugins").glob("llmeco-*")}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    """A project name as PEP 503 compares them (case and ``-_.`` runs folded)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path) -> dict[str, str]:
    """``name == version`` lines of a hashed lock file, by canonical name."""
    out = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            out[canonical(match.group(1))] = match.group(2)
    return out


def installed() -> dict[str, str]:
    """Every distribution this interpreter sees, by canonical name."""
    return {
        canonical(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"]
    }


def differences(locked: dict[str, str], present: dict[str, str]) -> list[str]:
    """One line per package that is not exactly as locked (empty when they agree)."""
    lines = []
    for name in sorted(locked.keys() | present.keys()):
        if name in UNLOCKED:
            continue
        want, have = locked.get(name), present.get(name)
        if want is None:
            lines.append(f"{name}=={have} is installed but not in the lock")
        elif have is None:
            lines.append(f"{name}=={want} is locked but not installed")
        elif want != have:
            lines.append(f"{name} is {have}, the lock says {want}")
    return lines


def main(argv: list[str]) -> int:
    """Compare and print; exit 1 on any difference."""
    locks = [Path(a) for a in argv] or sorted((ROOT / "requirements").glob("*.lock"))
    locked: dict[str, str] = {}
    for lock in locks:
        locked.update(pins(lock))
    problems = differences(locked, installed())
    for line in problems:
        print(f"check_lock: {line}", file=sys.stderr)
    if problems:
        print("check_lock: rebuild the venv (rm -rf .venv && make test)", file=sys.stderr)
        return 1
    print(f"check_lock: {len(locked)} packages installed exactly as locked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
