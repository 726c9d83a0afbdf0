"""Tool calls under constrained decoding: the grammar of well-formed calls, per format.

``tool_choice`` becomes a :class:`~llmeco.engine.request.ToolCallSpec` (:func:`tool_call_spec`)
and the spec a Lark grammar llguidance compiles (:func:`tool_call_lark`), in exactly the text
the model family's parser reads (its :class:`~llmeco.modeling.tool_parsers.CallSyntax`). For
the fallback format, one call is (``NAME`` one of the tool names, ``ARGS`` JSON that
validates against that tool's ``parameters``)::

    <tool_call>\\n{"name": "NAME", "arguments": ARGS}\\n</tool_call>

* ``required``: one call (several, separated as the format separates them, with
  ``parallel``), nothing else; the output ends after the last call.
* a named function: exactly one call of that function.
* ``auto``: free text, or text and then calls. The text cannot contain the format's call
  trigger (``<tool_call>``) unless a well-formed call follows it, so a call, once started,
  always completes with arguments that validate (formats without a trigger, Llama 3's, have
  calls only at the start: text may not open with ``{``).
* ``none``: no grammar (and the server renders no tools and parses no calls).

The arguments are JSON schemas embedded with ``%json`` and compiled in llguidance's
*lenient* mode: keywords it cannot enforce (``not``, ``if``/``then``, unknown formats) are
ignored rather than refused, so every schema a client may send compiles; the JSON itself is
always well-formed. Separators are ``json.dumps``'s (``", "``, ``": "``), as in the prompts.

A format marker that is a special token of the tokenizer (Mistral's ``[TOOL_CALLS]``) is
matched as that token (``<[id]>``), not as text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import llguidance

from llmeco.engine.request import StructuredOutput, ToolCallSpec
from llmeco.errors import InvalidRequest
from llmeco.modeling.tool_parsers import CallSyntax, get_tool_parser

__all__ = [
    "TOOL_JSON_OPTIONS",
    "ToolChoice",
    "check_tool_schema",
    "tool_call_lark",
    "tool_call_output",
    "tool_call_spec",
]

#: ``"none"``, ``"auto"``, ``"required"``, or the name of the one function to call.
ToolChoice = str

#: How argument JSON is compiled: compact ``json.dumps`` layout, unsupported keywords ignored.
TOOL_JSON_OPTIONS: dict[str, Any] = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
    "lenient": True,
}

#: The schema of a function declared without ``parameters``: no arguments.
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}

_REGEX_META = set("\\.+*?()|[]{}^$#&-~/")


def check_tool_schema(name: str, schema: Any, *, param: str = "tools") -> None:
    """Raise :class:`InvalidRequest` unless ``schema`` is a usable ``parameters`` schema.

    It must be a JSON object schema (``type`` absent or ``"object"``) that llguidance's
    JSON-schema compiler accepts in lenient mode: wrong keyword types (``"required": "x"``),
    unknown types, broken ``$ref`` pointers and invalid ``pattern`` regexes are errors. The
    message names the tool and the problem.
    """
    if not isinstance(schema, dict):
        raise InvalidRequest(f"tool {name!r}: parameters must be a JSON schema object", param=param)
    kind = schema.get("type", "object")
    if kind != "object":
        raise InvalidRequest(
            f"tool {name!r}: parameters must be a JSON schema of type 'object', not {kind!r}",
            param=param,
        )
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema,
            overrides=TOOL_JSON_OPTIONS,  # type: ignore[arg-type]
        )
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, None)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"tool {name!r}: invalid JSON schema: {exc}", param=param) from exc
    if is_error:
        raise InvalidRequest(
            f"tool {name!r}: invalid JSON schema: {'; '.join(messages)}", param=param
        )


def tool_call_spec(
    tools: Sequence[Mapping[str, Any]],
    choice: ToolChoice,
    tool_format: str,
    *,
    parallel: bool = True,
    content_schema: dict[str, Any] | None = None,
) -> ToolCallSpec | None:
    """The calls ``choice`` allows among ``tools`` (OpenAI tool definitions), in
    ``tool_format`` (a parser name); None for ``"none"`` (no constraint).

    ``content_schema`` constrains the text alternative of ``auto`` to JSON of that schema
    (``response_format`` together with tools).

    Raises:
        InvalidRequest: ``choice`` names a function that is not among ``tools``, or asks for
            a call with no tools (``param="tool_choice"``).
    """
    if choice == "none":
        return None
    named = _definitions(tools)
    if choice not in ("auto", "required"):
        if choice not in named:
            raise InvalidRequest(
                f"tool_choice names function {choice!r}, which is not among the tools",
                param="tool_choice",
            )
        named = {choice: named[choice]}
    if not named:
        if choice == "auto":
            return None
        raise InvalidRequest(f"tool_choice {choice!r} needs tools", param="tool_choice")
    forced = choice != "auto"
    return ToolCallSpec(
        tool_format,
        tuple(named.items()),
        required=forced,
        parallel=parallel and choice in ("auto", "required"),
        content_schema=None if forced else content_schema,
    )


def tool_call_output(
    tools: Sequence[Mapping[str, Any]],
    choice: ToolChoice,
    tool_format: str,
    *,
    parallel: bool = True,
    content_schema: dict[str, Any] | None = None,
) -> StructuredOutput | None:
    """:func:`tool_call_spec` as the ``structured`` field of ``SamplingParams``."""
    spec = tool_call_spec(
        tools, choice, tool_format, parallel=parallel, content_schema=content_schema
    )
    return None if spec is None else StructuredOutput("tool_calls", tool_calls=spec)


def tool_call_lark(spec: ToolCallSpec, special_tokens: Mapping[str, int] | None = None) -> str:
    """The Lark grammar (llguidance dialect) of the outputs ``spec`` allows.

    ``special_tokens`` maps special-token text to its id; marker text equal to one is
    matched as that token.

    Raises:
        ConfigError: ``spec.format`` is no parser's name.
    """
    syntax = get_tool_parser(spec.format).syntax
    special = dict(special_tokens or {})
    lit = _Literals(special)
    lines = ["%llguidance {}"]
    calls = [f"call_{i}" for i in range(len(spec.tools))]
    for rule, (name, schema) in zip(calls, spec.tools, strict=True):
        head = json.dumps(f'{{"name": {json.dumps(name)}, "{syntax.args_key}": ')
        lines.append(f"{rule}: {head} %json {_schema_json(schema)} {json.dumps('}')}")
    lines.append(f"call: {' | '.join(calls)}")
    framed = f"{lit(syntax.call_open)} call {lit(syntax.call_close)}"
    more = f"({lit(syntax.separator)} {framed})*" if spec.parallel else ""
    block_rest = f"call {lit(syntax.call_close)} {more} {lit(syntax.block_close)}"
    first_open = syntax.block_open + syntax.call_open
    if spec.required or spec.content_schema is not None:
        calls_rule = f"{lit(first_open)} {block_rest}"
        if spec.content_schema is None:
            lines.append(f"start: {calls_rule}")
        else:
            content = _schema_json(spec.content_schema)
            lines.append(f"start: %json {content} | {calls_rule}")
    else:
        lines += _auto_rules(syntax, lit, first_open, block_rest)
    return "\n".join(lines) + "\n"


def _auto_rules(syntax: CallSyntax, lit: _Literals, first_open: str, block_rest: str) -> list[str]:
    """``start`` for ``auto``: free text, or calls that complete once their trigger is written."""
    trigger = syntax.trigger
    if trigger is None:  # calls only open the output: text must not start like one
        return [
            f"start: TEXT | {lit(first_open)} {block_rest}",
            r"TEXT: /(.|\n)*/ & ~/[ \t\r\n]*\{(.|\n)*/",
        ]
    if not first_open.startswith(trigger):  # pragma: no cover - a syntax definition bug
        raise ValueError(f"the trigger {trigger!r} does not open the calls {first_open!r}")
    rest = lit(first_open[len(trigger) :])
    if trigger in lit.special:
        return [
            f"start: TEXT | TEXT? {lit(trigger)} {rest} {block_rest}",
            r"TEXT: /(.|\n)*/",
        ]
    escaped = _regex_escape(trigger)
    return [
        f"start: TEXT | text_trigger {rest} {block_rest}",
        rf"TEXT: /(.|\n)*/ & ~/(.|\n)*{escaped}(.|\n)*/",
        f"text_trigger[lazy]: /(.|\\n)*/ {json.dumps(trigger)}",
    ]


class _Literals:
    """Lark text for literal strings, with special-token markers as ``<[id]>``."""

    def __init__(self, special: dict[str, int]) -> None:
        self.special = special

    def __call__(self, text: str) -> str:
        if not text:
            return ""
        parts: list[str] = []
        rest = text
        while rest:
            hits = [(rest.find(s), s) for s in self.special if s and s in rest]
            if not hits:
                parts.append(json.dumps(rest))
                break
            at, token = min(hits)
            if at:
                parts.append(json.dumps(rest[:at]))
            parts.append(f"<[{self.special[token]}]>")
            rest = rest[at + len(token) :]
        return " ".join(parts)


def _definitions(tools: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each tool's name and ``parameters`` schema, in order (OpenAI tool definitions)."""
    out: dict[str, dict[str, Any]] = {}
    for tool in tools:
        function = tool.get("function", tool)
        schema = function.get("parameters")
        if schema is None:  # OpenAI: no parameters is an empty parameter list
            out[str(function["name"])] = dict(NO_PARAMETERS)
        else:  # arguments are always an object, even for a schema that does not say so
            out[str(function["name"])] = {"type": "object", **schema}
    return out


def _schema_json(schema: Mapping[str, Any]) -> str:
    """A schema as the JSON after ``%json``, with the compile options set in it."""
    guidance = {**dict(schema.get("x-guidance") or {}), **TOOL_JSON_OPTIONS}
    return json.dumps({**schema, "x-guidance": guidance})


def _regex_escape(text: str) -> str:
    """``text`` as a literal inside a Lark ``/regex/`` (Rust regex syntax, ``/`` escaped)."""
    return "".join("\\" + c if c in _REGEX_META else c for c in text)
