"""The calculator tool's evaluator: arithmetic only, bounded work, never ``eval``."""

from __future__ import annotations

import pytest

from llmeco.apps.agents.calculator import MAX_LENGTH, evaluate, format_number
from llmeco.errors import InvalidRequest


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("2 ** 10", "1024"),
        ("2 ^ 10", "1024"),  # models write powers this way
        ("-3 ** 2", "-9"),
        ("--3", "3"),
        ("+4 - -1", "5"),
        ("7 / 2", "3.5"),
        ("8 / 2", "4"),
        ("10 % 3", "1"),
        ("0.1 + 0.2", "0.3"),
        ("1e3 * 2", "2000"),
        ("2 ** -1", "0.5"),
        ("1 / 3", "0.333333333333"),
        ("12345678901234567890 * 10", "123456789012345678900"),
        ("  (12.5 * 4) / 3 ", "16.6666666667"),
    ],
)
def test_arithmetic(expression: str, expected: str) -> None:
    assert format_number(evaluate(expression)) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("x + 1", "the name 'x' is not allowed"),
        ("__import__('os').system('id')", "function calls is not allowed"),
        ("abs(-1)", "function calls is not allowed"),
        ("(1).real", "the attribute 'real' is not allowed"),
        ("'a' * 3", "the literal 'a' is not allowed"),
        ("True + 1", "the literal True is not allowed"),
        ("1j * 2", "the literal 1j is not allowed"),
        ("7 // 2", "the operator FloorDiv is not allowed"),
        ("1 < 2", "Compare expressions is not allowed"),
        ("[1, 2]", "List expressions is not allowed"),
        ("lambda: 1", "Lambda expressions is not allowed"),
        ("9 ** 9 ** 9", "the exponent 387420489 is too large"),
        ("2 ** 5000", "the result is too large"),
        ("(2 ** 4000) * (2 ** 4000)", "the result is too large"),
        ("10.0 ** 400", "the result is too large"),
        ("1e308 * 10", "the result is too large"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("(-8) ** 0.5", "not a real number"),
        ("", "the expression is empty"),
        ("1 +", "is not an arithmetic expression"),
        ("import os", "is not an arithmetic expression"),
        ("1" + "+1" * MAX_LENGTH, "longer than"),
    ],
)
def test_refusals(expression: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        evaluate(expression)
    assert message in info.value.message
    assert info.value.param == "expression"


def test_nesting_is_bounded_by_the_length_limit() -> None:
    assert evaluate("(" * 140 + "1" + ")" * 140) == 1
    assert evaluate("-" * (MAX_LENGTH - 1) + "1") == -1
    with pytest.raises(InvalidRequest, match="longer than"):
        evaluate("(" * 200 + "1" + ")" * 200)
