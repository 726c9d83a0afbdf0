"""A safe arithmetic evaluator for the agents' ``calculator`` tool.

The expression is parsed with :mod:`ast` and walked: only numbers (int and float literals),
the binary operators ``+ - * / ** %``, unary ``+``/``-`` and parentheses are evaluated.
Anything else — names, attributes, calls, subscripts, comparisons, strings, ``//`` — is
refused with a message saying what is not allowed. Nothing is ever passed to ``eval``.

Work is bounded so a model cannot make the server spin: the expression is at most
:data:`MAX_LENGTH` characters, an exponent at most :data:`MAX_EXPONENT` in size, and every
integer result at most :data:`MAX_BITS` bits (``9**9**9`` is refused before it is computed).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from llmeco.errors import InvalidRequest

#: Longest expression accepted.
MAX_LENGTH = 300
#: Largest exponent magnitude of ``**``.
MAX_EXPONENT = 10_000
#: Largest integer (in bits) any step may produce.
MAX_BITS = 4096

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.Pow: "**"}


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression.

    Raises:
        InvalidRequest: the expression is empty, too long, not arithmetic (names, calls,
            attributes …), divides by zero, or its result would be too large.
    """
    text = expression.strip()
    if not text:
        raise InvalidRequest("the expression is empty", param="expression")
    if len(text) > MAX_LENGTH:
        raise InvalidRequest(
            f"the expression is longer than {MAX_LENGTH} characters", param="expression"
        )
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        raise InvalidRequest(
            f"{text!r} is not an arithmetic expression", param="expression"
        ) from None
    return _eval(tree.body)


def format_number(value: Number) -> str:
    """A result as the model reads it: integers exactly, floats to 12 significant digits."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}"


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _refuse(f"the literal {value!r}")
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _eval(node.operand)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise InvalidRequest("division by zero", param="expression") from None
        except OverflowError:
            raise InvalidRequest("the result is too large", param="expression") from None
        if isinstance(result, complex):  # (-8) ** 0.5
            raise InvalidRequest("the result is not a real number", param="expression")
        if isinstance(result, int) and result.bit_length() > MAX_BITS:
            raise InvalidRequest("the result is too large", param="expression")
        if isinstance(result, float) and not math.isfinite(result):
            raise InvalidRequest("the result is too large", param="expression")
        return result
    raise _refuse(_describe(node))


def _check_power(base: Number, exponent: Number) -> None:
    """Refuse powers whose result would be huge before computing them."""
    if abs(exponent) > MAX_EXPONENT:
        raise InvalidRequest(
            f"the exponent {format_number(exponent)} is too large (at most {MAX_EXPONENT})",
            param="expression",
        )
    whole = isinstance(base, int) and isinstance(exponent, int)
    if whole and exponent > 0 and abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_BITS:
        raise InvalidRequest("the result is too large", param="expression")


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return f"the attribute {node.attr!r}"
    if isinstance(node, ast.Call):
        return "function calls"
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    return f"{type(node).__name__} expressions"


def _refuse(what: str) -> InvalidRequest:
    allowed = " ".join(_SYMBOL.values())
    return InvalidRequest(
        f"{what} is not allowed: only numbers, {allowed} and parentheses", param="expression"
    )
