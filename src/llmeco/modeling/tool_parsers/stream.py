"""The incremental parser every JSON-call family shares, driven by its :class:`CallSyntax`.

It reads the output as it grows and settles text only when no continuation can change the
decision: content is sent while it cannot be the start of a call marker; a call starts (its
index, id and name go out) once its object has a name; its arguments are sent as the raw
text of the arguments object as it arrives. So any split of the output into pieces gives
the same content and calls, and :func:`parse_whole` is simply one feed of the whole text.

Lenient where the grammar is strict (unconstrained output): whitespace anywhere, keys in
any order, extra keys, a missing closing marker. Text that opens like a call but is not one
(``<tool_call>`` followed by prose, an object without a name) goes out as content. A call
that breaks after it started keeps the arguments sent so far, and the rest of its block is
dropped.
"""

from __future__ import annotations

import enum
import json

from llmeco.modeling.tool_parsers.base import (
    CallSyntax,
    ParsedOutput,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
    new_call_id,
)
from llmeco.modeling.tool_parsers.scan import (
    CallScan,
    Malformed,
    OpenContainer,
    scan_call,
    skip_ws,
)

__all__ = ["JsonCallStream", "parse_whole"]

_WS = " \t\n\r"


class _State(enum.Enum):
    START = "start"  # calls may only open the output: before its first non-space text
    CONTENT = "content"  # text, watching for the trigger
    PLAIN = "plain"  # text to the end (no call can start any more)
    AFTER_TRIGGER = "after_trigger"  # the trigger was seen: the array or object must follow
    ITEM = "item"  # where an object must start (array item, after a separator)
    OBJECT = "object"  # inside a call object
    AFTER_CALL = "after_call"  # a call object closed; its closing marker may follow
    BETWEEN = "between"  # between calls of one block: a separator, the end, or content
    DISCARD = "discard"  # a broken call's block, dropped up to its closing marker


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest proper prefix of ``marker`` that ``text`` ends with."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0


class JsonCallStream:
    """Streams one output of a JSON-call format into content and call steps."""

    def __init__(self, syntax: CallSyntax) -> None:
        """A fresh parser for one output in ``syntax``."""
        self.syntax = syntax
        self._buf = ""
        self._pos = 0  # text before _pos is settled
        self._state = _State.CONTENT if syntax.trigger else _State.START
        self._revert = 0  # where the current block opened (text to send if it is no call)
        self._block_calls = 0  # calls committed in the current block
        self._obj = 0  # where the current call object opens
        self._committed = False  # the current object is a call (its start was sent)
        self._sent = 0  # characters of the current call's arguments sent
        self._open_args: OpenContainer | None = None  # a call's arguments object, streaming
        self._args_at = 0  # where that object opens
        self._held_ws = ""  # whitespace at the end of the content so far, not yet sent
        self._strip_leading = False  # drop whitespace that opens the next content
        self._ids: list[str] = []
        self._names: list[str] = []
        self._args: list[str] = []

    # -- public ---------------------------------------------------------------------
    @property
    def calls(self) -> list[ToolCall]:
        """The calls started so far, with the arguments sent so far."""
        return [ToolCall(*c) for c in zip(self._ids, self._names, self._args, strict=True)]

    def feed(self, text: str) -> StreamDelta:
        """Add the next piece of output; return what it settles."""
        self._buf += text
        out = StreamDelta()
        while self._step(out):
            pass
        return out

    def finish(self) -> StreamDelta:
        """Settle the rest at the end of the output."""
        out = StreamDelta()
        while self._step(out):
            pass
        state = self._state
        opened = state in (_State.START, _State.AFTER_TRIGGER, _State.ITEM) or (
            state is _State.OBJECT and not self._committed
        )
        if opened and self._block_calls == 0:  # an unfinished block that is no call: text
            self._pos = self._revert
            out.content += self._content(len(self._buf))
        elif state in (_State.CONTENT, _State.PLAIN):
            out.content += self._content(len(self._buf))
        # A call cut short (state OBJECT, committed) keeps the arguments sent so far.
        self._state = _State.PLAIN
        self._pos = len(self._buf)
        if not self._ids:
            out.content += self._held_ws
        self._held_ws = ""
        return out

    # -- the machine ----------------------------------------------------------------
    def _step(self, out: StreamDelta) -> bool:
        """Advance one decision; False when more text is needed."""
        handler = {
            _State.START: self._start,
            _State.CONTENT: self._scan_content,
            _State.PLAIN: self._plain,
            _State.AFTER_TRIGGER: self._after_trigger,
            _State.ITEM: self._item,
            _State.OBJECT: self._object,
            _State.AFTER_CALL: self._after_call,
            _State.BETWEEN: self._between,
            _State.DISCARD: self._discard,
        }[self._state]
        return handler(out)

    def _start(self, out: StreamDelta) -> bool:
        """Output start (no trigger): an optional leading marker, then an object or text."""
        j = skip_ws(self._buf, self._pos)
        rest = self._buf[j:]
        if not rest:
            return False
        marker = self.syntax.leading_marker
        if marker and rest.startswith(marker):
            self._revert, self._pos, self._state = self._pos, j + len(marker), _State.ITEM
            return True
        if marker and marker.startswith(rest):
            return False
        if rest[0] == "{":
            self._revert, self._obj = self._pos, j
            self._begin_object()
            return True
        self._state = _State.PLAIN
        return True

    def _scan_content(self, out: StreamDelta) -> bool:
        """Send content up to the trigger (or up to a possible partial trigger)."""
        trigger = self.syntax.trigger
        assert trigger is not None
        k = self._buf.find(trigger, self._pos)
        if k < 0:
            end = len(self._buf) - _partial_suffix(self._buf[self._pos :], trigger)
            out.content += self._content(end)
            return False
        out.content += self._content(k)
        self._revert, self._pos = k, k + len(trigger)
        self._block_calls = 0
        self._state = _State.AFTER_TRIGGER
        return True

    def _plain(self, out: StreamDelta) -> bool:
        out.content += self._content(len(self._buf))
        return False

    def _after_trigger(self, out: StreamDelta) -> bool:
        j = skip_ws(self._buf, self._pos)
        if j >= len(self._buf):
            return False
        c = self._buf[j]
        if c == "[" and self.syntax.in_array:
            self._pos, self._state = j + 1, _State.ITEM
        elif c == "{":
            self._obj = j
            self._begin_object()
        else:
            self._not_a_call(out)
        return True

    def _item(self, out: StreamDelta) -> bool:
        """Where a call object must start (after ``[``, a separator or a leading marker)."""
        j = skip_ws(self._buf, self._pos)
        if j >= len(self._buf):
            return False
        if self._buf[j] == "{":
            self._obj = j
            self._begin_object()
        elif self._block_calls:
            self._pos, self._state = j, self._content_state()
        else:
            self._not_a_call(out)
        return True

    def _object(self, out: StreamDelta) -> bool:
        if self._open_args is not None and not self._follow_arguments(out):
            return False
        scan = scan_call(self._buf, self._obj, self.syntax.args_keys)
        if not self._committed:
            ready = scan.name is not None and (
                scan.args_start is not None or not self.syntax.require_arguments
            )
            if not ready:
                if scan.end is None and scan.bad is None:
                    return False
                if self._block_calls:  # a later object of a block that had calls
                    self._pos, self._state = self._obj, _State.DISCARD
                else:
                    self._not_a_call(out)
                return True
            self._commit(scan, out)
        self._send_arguments(scan, out)
        if scan.bad is not None:
            self._end_call()
            self._pos, self._state = scan.bad, _State.DISCARD
            return True
        if scan.end is None:
            start = scan.args_start
            if start is not None and scan.args_end is None and self._buf[start] == "{":
                # Follow the open arguments incrementally instead of rescanning the call.
                self._open_args, self._args_at = OpenContainer(start), start
                self._open_args.advance(self._buf)
            return False
        if self._sent == 0 and scan.args_start is None:
            self._send(out, "{}")
        self._end_call()
        self._pos, self._state = scan.end, _State.AFTER_CALL
        return True

    def _follow_arguments(self, out: StreamDelta) -> bool:
        """Send the arguments that arrived; True once they closed (or broke) and the call
        object needs scanning again, False while they are still open."""
        assert self._open_args is not None
        try:
            end = self._open_args.advance(self._buf)
        except Malformed as exc:
            end = exc.at
        stop = len(self._buf) if end is None else end
        self._send(out, self._buf[self._args_at + self._sent : stop])
        if end is None:
            return False
        self._open_args = None
        return True

    def _after_call(self, out: StreamDelta) -> bool:
        closer = self.syntax.call_close.strip()
        if closer:
            j = skip_ws(self._buf, self._pos)
            rest = self._buf[j:]
            if not rest or (closer.startswith(rest) and rest != closer):
                return False
            if rest.startswith(closer):
                self._pos = j + len(closer)
        self._state = _State.BETWEEN
        return True

    def _between(self, out: StreamDelta) -> bool:
        """After a call: the next one (separator, array comma), the block's end, or text."""
        syntax = self.syntax
        j = skip_ws(self._buf, self._pos)
        if j >= len(self._buf):
            return False
        c = self._buf[j]
        if syntax.in_array and c == ",":
            self._pos, self._state = j + 1, _State.ITEM
        elif syntax.in_array and c == "]":
            self._pos, self._state = j + 1, self._content_state()
        elif syntax.separator.strip() and c == syntax.separator.strip():
            self._pos, self._state = j + 1, _State.ITEM
        else:
            self._pos, self._state = j, self._content_state()
        return True

    def _discard(self, out: StreamDelta) -> bool:
        """Drop a broken block up to its closing marker (or to the end without one)."""
        closer = self.syntax.call_close.strip()
        k = self._buf.find(closer, self._pos) if closer else -1
        if k < 0:
            return False
        self._pos, self._state = k + len(closer), self._content_state()
        return True

    # -- helpers --------------------------------------------------------------------
    def _content_state(self) -> _State:
        """Where text after a block goes: watching for more calls, or plain to the end."""
        self._strip_leading = True
        return _State.CONTENT if self.syntax.trigger else _State.PLAIN

    def _content(self, end: int) -> str:
        """Settle ``buf[pos:end]`` as content; returns the part to send now.

        Whitespace at its end is held back until text follows (calls drop it), and
        whitespace right after a call block is dropped.
        """
        text = self._buf[self._pos : end]
        self._pos = max(self._pos, end)
        if self._strip_leading:
            stripped = text.lstrip(_WS)
            if stripped:
                self._strip_leading = False
            text = stripped
        text = self._held_ws + text
        body = text.rstrip(_WS)
        self._held_ws = text[len(body) :]
        return body

    def _not_a_call(self, out: StreamDelta) -> None:
        """The block that opened at ``_revert`` is no call: its text is content."""
        if self.syntax.trigger is None:
            self._pos, self._state = self._revert, _State.PLAIN
            return
        self._pos = self._revert
        out.content += self._content(self._revert + len(self.syntax.trigger))
        self._state = _State.CONTENT

    def _begin_object(self) -> None:
        self._committed, self._sent, self._state = False, 0, _State.OBJECT
        self._open_args = None

    def _commit(self, scan: CallScan, out: StreamDelta) -> None:
        """The object is a call: send its index, id and name."""
        assert scan.name is not None
        self._committed = True
        self._block_calls += 1
        self._held_ws = ""
        index = len(self._ids)
        call_id = new_call_id()
        self._ids.append(call_id)
        self._names.append(scan.name)
        self._args.append("")
        out.calls.append(ToolCallDelta(index, "", id=call_id, name=scan.name))

    def _send_arguments(self, scan: CallScan, out: StreamDelta) -> None:
        """Send the arguments text that arrived: an object as it streams, any other value
        (a JSON-encoded string, say) once complete."""
        start = scan.args_start
        if start is None:
            return
        if self._buf[start] == "{":
            stop = scan.args_stop
            end = len(self._buf) if stop is None else stop
            self._send(out, self._buf[start + self._sent : end])
        elif scan.args_end is not None and self._sent == 0:
            raw = self._buf[start : scan.args_end]
            try:
                value = json.loads(raw) if raw.startswith('"') else raw
            except ValueError:
                value = raw
            self._send(out, value if isinstance(value, str) else raw)

    def _send(self, out: StreamDelta, fragment: str) -> None:
        if not fragment:
            return
        index = len(self._ids) - 1
        self._args[index] += fragment
        self._sent += len(fragment)
        last = out.calls[-1] if out.calls else None
        if last is not None and last.index == index and last.name is None:
            out.calls[-1] = ToolCallDelta(index, last.arguments + fragment)
        else:
            out.calls.append(ToolCallDelta(index, fragment))

    def _end_call(self) -> None:
        self._committed = False


def parse_whole(syntax: CallSyntax, text: str) -> ParsedOutput:
    """Content and calls of a complete output: one feed of a fresh stream, then finish."""
    stream = JsonCallStream(syntax)
    content = stream.feed(text).content + stream.finish().content
    return ParsedOutput(content or None, stream.calls)
