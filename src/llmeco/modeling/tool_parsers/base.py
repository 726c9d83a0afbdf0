"""What a tool parser produces, the ``ToolParser`` protocol, and a family's call syntax."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "CallSyntax",
    "ParsedOutput",
    "StreamDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolParser",
    "ToolStream",
    "new_call_id",
]

_ID_ALPHABET = string.ascii_letters + string.digits


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's shape: ``call_`` and 24 letters and digits."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


@dataclass(frozen=True)
class ToolCall:
    """One complete call: ``arguments`` is the JSON text of the arguments, as written."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A step of one call while streaming.

    The first delta of call ``index`` has its ``id`` and ``name`` (and ``arguments == ""``
    or a first fragment); later ones carry only argument fragments. The fragments of a call,
    joined, are its complete ``arguments``.
    """

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass
class StreamDelta:
    """What one piece of model output adds: content text and call steps (either may be empty)."""

    content: str = ""
    calls: list[ToolCallDelta] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.calls)


@dataclass(frozen=True)
class ParsedOutput:
    """A whole output split into content (None when there is none) and calls."""

    content: str | None
    calls: list[ToolCall]


@dataclass(frozen=True)
class CallSyntax:
    """How one model family writes calls, for parsing and for the tool-call grammar.

    The canonical text of calls ``c1, c2`` is ``block_open + call_open + c1 + call_close +
    separator + call_open + c2 + call_close + block_close``, each ``c`` being
    ``{"name": "<name>", "<args_key>": <arguments>}`` (``json.dumps`` separators). That is what
    the grammar lets a model write; the parser is more lenient (whitespace, key order,
    ``args_aliases``, a missing closer).
    """

    #: Text that opens the calls anywhere in an output ("<tool_call>"); None: calls may only
    #: open the output (Llama 3's JSON calls).
    trigger: str | None
    block_open: str = ""
    call_open: str = ""
    call_close: str = ""
    separator: str = ""
    block_close: str = ""
    args_key: str = "arguments"
    #: Other keys accepted for the arguments when parsing.
    args_aliases: tuple[str, ...] = ()
    #: A marker the parser skips at the start of calls (Llama 3's ``<|python_tag|>``).
    leading_marker: str | None = None
    #: Calls sit in a JSON array after the trigger (Mistral's ``[TOOL_CALLS][...]``).
    in_array: bool = False
    #: An object is a call only once it has both a name and arguments (else: once it has a
    #: name). For formats whose calls look like ordinary JSON content (Llama 3).
    require_arguments: bool = False

    @property
    def args_keys(self) -> tuple[str, ...]:
        """Every key the parser takes for the arguments."""
        return (self.args_key, *self.args_aliases)

    def markers(self) -> Iterable[str]:
        """The marker strings of this syntax (special tokens in some tokenizers)."""
        for m in (self.trigger, self.leading_marker, self.call_open, self.call_close):
            if m:
                yield m.strip()


class ToolStream(Protocol):
    """Incremental parsing of one output: feed the text as it is generated."""

    def feed(self, text: str) -> StreamDelta:
        """The content and call steps that ``text`` (the next piece of output) settles."""
        ...

    def finish(self) -> StreamDelta:
        """Settle what was held back at the end of the output (a partial marker becomes
        content, a call cut short ends with the arguments it has)."""
        ...

    @property
    def calls(self) -> list[ToolCall]:
        """The calls started so far, with the arguments streamed so far."""
        ...


class ToolParser(Protocol):
    """A model family's tool-call format: parse whole outputs or stream them.

    ``parse(text)`` equals feeding ``text`` to a :meth:`stream` in any pieces, so a streamed
    response always adds up to the non-streamed one.
    """

    #: Registry name (``--tool-parser``).
    name: str
    #: The format, also used to build the tool-call grammar.
    syntax: CallSyntax
    #: Whether its markers are special tokens the detokenizer must keep
    #: (``skip_special_tokens=False``).
    keep_special_tokens: bool

    def parse(self, text: str) -> ParsedOutput:
        """Split a complete output into content and calls."""
        ...

    def stream(self) -> ToolStream:
        """A fresh incremental parser for one output."""
        ...
