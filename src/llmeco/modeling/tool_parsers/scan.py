"""Scanning JSON that may still be arriving: where a value ends, and what a call object holds.

These scanners read a prefix of a model's output and say what is settled: a value is
*complete* (its end index), *open* (the text ends inside it) or *malformed* (no continuation
can make it JSON). They check structure (strings, escapes, bracket nesting, separators), not
every JSON rule: a number like ``01`` passes, and the final ``json.loads`` of a client finds
such slips. The answers for a prefix never change as text is appended, which is what makes
streamed parsing agree with parsing the whole output.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["CallScan", "Malformed", "OpenContainer", "scan_call", "skip_ws", "value_end"]

_WS = " \t\n\r"
_SCALAR = re.compile(r"[-+0-9A-Za-z.]+")
_CLOSER = {"{": "}", "[": "]"}


class Malformed(ValueError):
    """The text cannot be the start of the expected JSON; ``at`` is where it went wrong."""

    def __init__(self, at: int) -> None:
        super().__init__(f"malformed JSON at {at}")
        self.at = at


def skip_ws(s: str, i: int) -> int:
    """The first index at or after ``i`` that is not JSON whitespace (``len(s)`` if none)."""
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


def _string_end(s: str, i: int) -> int | None:
    """End (exclusive) of the JSON string opening at ``s[i] == '"'``; None while it is open."""
    j = i + 1
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return j + 1
        if c == "\n":
            raise Malformed(j)
        j += 1
    return None


def value_end(s: str, i: int) -> int | None:
    """End (exclusive) of the JSON value starting at ``s[i]`` (not whitespace).

    None while the value is open. A number or literal that reaches the end of ``s`` is open
    too: more digits may follow. Raises :class:`Malformed`.
    """
    c = s[i]
    if c == '"':
        return _string_end(s, i)
    if c in _CLOSER:
        return _container_end(s, i)
    m = _SCALAR.match(s, i)
    if m is None:
        raise Malformed(i)
    return None if m.end() == len(s) else m.end()


def _container_end(s: str, i: int) -> int | None:
    """End of the object or array opening at ``s[i]``, checking bracket nesting."""
    stack: list[str] = []
    j = i
    while j < len(s):
        c = s[j]
        if c == '"':
            end = _string_end(s, j)
            if end is None:
                return None
            j = end
            continue
        if c in _CLOSER:
            stack.append(_CLOSER[c])
        elif c in "}]":
            if not stack or stack.pop() != c:
                raise Malformed(j)
            if not stack:
                return j + 1
        j += 1
    return None


class OpenContainer:
    """Where an object or array that is still arriving ends, found incrementally.

    :func:`value_end` rescans from the start on every call; this remembers where it got to
    (nesting, inside a string, after a backslash), so following a long value as it streams
    costs time linear in its length. Same answers as :func:`value_end`.
    """

    def __init__(self, start: int) -> None:
        """Follow the container opening at index ``start`` of the text."""
        self._pos = start
        self._stack: list[str] = []
        self._in_string = False
        self._escaped = False

    def advance(self, s: str) -> int | None:
        """Read ``s`` (the same text, grown) on from where the last call stopped: the end
        (exclusive) of the container once it closes, else None. Raises :class:`Malformed`."""
        j = self._pos
        while j < len(s):
            c = s[j]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif c == "\\":
                    self._escaped = True
                elif c == '"':
                    self._in_string = False
                elif c == "\n":
                    raise Malformed(j)
            elif c == '"':
                self._in_string = True
            elif c in _CLOSER:
                self._stack.append(_CLOSER[c])
            elif c in "}]":
                if not self._stack or self._stack.pop() != c:
                    raise Malformed(j)
                if not self._stack:
                    self._pos = j + 1
                    return j + 1
            j += 1
        self._pos = j
        return None


@dataclass
class CallScan:
    """What a (possibly partial) call object ``{"name": ..., "arguments": ...}`` holds.

    Indices are into the scanned text. ``args_start`` is where the arguments value begins
    (once known), ``args_end`` where it ends (None while open), ``end`` just after the
    object's closing brace (None while open), and ``bad`` where the text stopped being JSON
    (None while it is fine); what was found before ``bad`` stands.
    """

    name: str | None = None
    args_start: int | None = None
    args_end: int | None = None
    end: int | None = None
    bad: int | None = None

    @property
    def args_stop(self) -> int | None:
        """Where the arguments text ends for now: its end, or where the JSON broke."""
        return self.args_end if self.args_end is not None else self.bad


def _decode_string(s: str, start: int, end: int) -> str:
    """The text of the complete JSON string ``s[start:end]``; Malformed on a bad escape."""
    try:
        value = json.loads(s[start:end])
    except ValueError as exc:
        raise Malformed(start) from exc
    if not isinstance(value, str):
        raise Malformed(start)
    return value


def scan_call(s: str, i: int, args_keys: tuple[str, ...]) -> CallScan:
    """Scan the call object opening at ``s[i] == '{'`` as far as ``s`` goes.

    Keys other than ``name`` and ``args_keys`` are skipped. Where the object cannot be JSON
    (or its ``name`` is not a string), ``bad`` says so.
    """
    scan = CallScan()
    try:
        _scan_members(s, i, args_keys, scan)
    except Malformed as exc:
        scan.bad = exc.at
    return scan


def _scan_members(s: str, i: int, args_keys: tuple[str, ...], scan: CallScan) -> None:
    """Fill ``scan`` member by member; raises :class:`Malformed` where the JSON breaks."""
    j = skip_ws(s, i + 1)
    first = True
    while j < len(s):
        if s[j] == "}" and first:
            scan.end = j + 1
            return
        if s[j] != '"':
            raise Malformed(j)
        key_end = _string_end(s, j)
        if key_end is None:
            return
        key = _decode_string(s, j, key_end)
        j = skip_ws(s, key_end)
        if j >= len(s):
            return
        if s[j] != ":":
            raise Malformed(j)
        j = skip_ws(s, j + 1)
        if j >= len(s):
            return
        start = j
        is_args = key in args_keys and scan.args_start is None
        if is_args:
            scan.args_start = start
        end = value_end(s, start)
        if is_args:
            scan.args_end = end
        if end is None:
            return
        if key == "name":
            if s[start] != '"':
                raise Malformed(start)
            scan.name = _decode_string(s, start, end)
        j = skip_ws(s, end)
        if j >= len(s):
            return
        if s[j] == "}":
            scan.end = j + 1
            return
        if s[j] != ",":
            raise Malformed(j)
        j = skip_ws(s, j + 1)
        first = False
