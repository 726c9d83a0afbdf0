"""The bytes of an upstream's answer on their way to the client, and what they tell us.

A relayed SSE stream is cut into events (``\\n\\n``, ``\\r\\n\\r\\n`` or ``\\r\\r`` ends
one; llama.cpp's server uses CRLF) and each event is passed on byte for byte, except two:

* the usage-only chunk (``"choices": []`` with a ``usage`` object) when the gateway asked
  for it (``stream_options.include_usage``) and the client did not: it is read, then dropped;
* ``data: [DONE]``, held back until the request's tokens are charged and the audit entry can
  carry them (the audit middleware commits when it sees ``[DONE]``).

The text of each chunk is kept (unparsed) so the tokens can be counted with a tokenizer when
the upstream reports no usage at all.
"""

from __future__ import annotations

import json
import re
from typing import Any

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_DATA = re.compile(rb"^data:[ ]?(.*)$", re.MULTILINE)


def _payload(event: bytes) -> bytes:
    """The ``data:`` lines of one SSE event, joined (b"" for comments or other fields)."""
    return b"\n".join(m.group(1).rstrip(b"\r") for m in _DATA.finditer(event))


def usage_of(document: Any) -> dict[str, int] | None:
    """The ``usage`` object of a parsed response or chunk, when it has token counts."""
    if not isinstance(document, dict):
        return None
    usage = document.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        return {k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}
    return None


def choice_text(document: Any) -> str:
    """Generated text in a response or chunk (chat ``message``/``delta`` or ``text``)."""
    if not isinstance(document, dict):
        return ""
    parts: list[str] = []
    for choice in document.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        for key in ("message", "delta"):
            part = choice.get(key)
            if isinstance(part, dict):
                content = part.get("content")
                if isinstance(content, str):
                    parts.append(content)
                for call in part.get("tool_calls") or []:
                    if isinstance(call, dict) and isinstance(call.get("function"), dict):
                        parts.append(str(call["function"].get("arguments") or ""))
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return "".join(parts)


class SseRelay:
    """Splits an upstream SSE byte stream into events and decides what the client gets."""

    def __init__(self, *, strip_usage: bool) -> None:
        self.strip_usage = strip_usage
        self._buffer = b""
        self.usage: dict[str, int] | None = None
        #: The ``data: [DONE]`` event as the upstream wrote it, once seen (held back).
        self.done: bytes | None = None
        self._payloads: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        """Bytes of every complete event in ``chunk`` (plus what was buffered) to send now."""
        self._buffer += chunk
        out: list[bytes] = []
        while True:
            match = _EVENT_END.search(self._buffer)
            if match is None:
                break
            event, self._buffer = self._buffer[: match.end()], self._buffer[match.end() :]
            kept = self._event(event)
            if kept:
                out.append(kept)
        return b"".join(out)

    def flush(self) -> bytes:
        """Whatever is left after the upstream closed (an unterminated event), as is."""
        rest, self._buffer = self._buffer, b""
        if rest.strip() and _payload(rest).strip() == b"[DONE]":
            self.done = rest
            return b""
        return rest

    def _event(self, event: bytes) -> bytes | None:
        if self.done is not None:
            return None  # nothing follows [DONE]
        data = _payload(event)
        if data.strip() == b"[DONE]":
            self.done = event
            return None
        if not data:
            return event
        self._payloads.append(data)
        if b'"usage"' in data:
            try:
                document = json.loads(data)
            except ValueError:
                return event
            found = usage_of(document)
            if found is not None:
                self.usage = found
                if self.strip_usage and not document.get("choices"):
                    return None
        return event

    def text(self) -> str:
        """Everything the stream generated so far (for counting tokens without usage)."""
        out: list[str] = []
        for data in self._payloads:
            try:
                out.append(choice_text(json.loads(data)))
            except ValueError:
                continue
        return "".join(out)
