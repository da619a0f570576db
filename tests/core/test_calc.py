"""The calc brain: words and symbols, exact results, bounded work, and agreement with Python's arithmetic."""

from __future__ import annotations

import math
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet.agents.brains import BrainRequest, make_brain
from agentnet.agents.brains.calc import DIV_ZERO, HELP, answer, format_number


def ask(text: str) -> str:
    return answer(text).text


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is 12 times 11?", "132"),
        ("twelve times eleven", "132"),
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("10 - 4 - 3", "3"),
        ("2^10", "1024"),
        ("2 ** 3 ** 2", "512"),
        ("-2^2", "-4"),
        ("(-2)^2", "4"),
        ("2 ^ -1", "0.5"),
        ("what is 2 - -3?", "5"),
        ("10 / 4", "2.5"),
        ("1/3", "0.3333333333"),
        ("2/3", "0.6666666667"),
        ("0.1 + 0.2", "0.3"),
        (".5 * 4", "2"),
        ("1,000 * 3", "3000"),
        ("7 plus 8", "15"),
        ("add 3 to 5", "8"),
        ("add 3 and 5", "8"),
        ("the sum of 3 and 4", "7"),
        ("10 minus 4", "6"),
        ("subtract 3 from 10", "7"),
        ("3 subtracted from 10", "7"),
        ("6 multiplied by 7", "42"),
        ("multiply 3 by 4", "12"),
        ("3 x 4", "12"),
        ("3x4", "12"),
        ("3 \u00d7 4 \u2212 1", "11"),  # multiplication sign, minus sign
        ("84 divided by 2", "42"),
        ("divide 12 by 4", "3"),
        ("10 over 4", "2.5"),
        ("2 to the power of 10", "1024"),
        ("3 raised to the power of 4", "81"),
        ("5 squared", "25"),
        ("2 cubed plus one", "9"),
        ("square root of 81", "9"),
        ("the square root of 2", "1.414213562"),
        ("sqrt(9/4)", "1.5"),
        ("15 percent of 80", "12"),
        ("20% of 50", "10"),
        ("50%", "0.5"),
        ("twenty-one times two", "42"),
        ("ninety nine divided by nine", "11"),
        ("one hundred and five plus one", "106"),
        ("one thousand two hundred thirty four minus four", "1230"),
        ("a hundred times 2", "200"),
        ("3 thousand plus 1", "3001"),
        ("zero times five", "0"),
        ("minus 5 plus 3", "-2"),
        ("negative four squared", "-16"),
        ("2(3 + 4)", "14"),
        ("2 ^ 0.5", "1.414213562"),
        ("1 / 3000000", "3.333333333e-7"),
        ("0.000001 * 3", "0.000003"),
        ("10 ^ 20 / 3", "3.333333333e+19"),
        ("solve for x: 2 + 3", "5"),
        ("I want to add 3 and 5", "8"),
    ],
)
def test_answers(question: str, expected: str) -> None:
    assert ask(question) == expected


def test_division_by_zero_is_a_reply() -> None:
    assert ask("5 / 0") == DIV_ZERO == "cannot divide by zero"
    assert ask("what is ten divided by zero") == DIV_ZERO
    assert ask("0 ^ -1") == DIV_ZERO
    assert ask("1 / (2 - 2)") == DIV_ZERO


@pytest.mark.parametrize("text", ["hello there", "", "what is 7", "I have 3 apples", "__import__('os').system('x')"])
def test_text_without_arithmetic_gets_the_help_reply(text: str) -> None:
    assert ask(text) == HELP


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 plus", "I could not work that out: expected a number after 'plus'."),
        ("(2 + 3", "I could not work that out: expected ')' after '3'."),
        ("3 plus times 4", "I could not work that out: I did not expect 'times' there."),
        ("subtract 3 and 4", "I could not work that out: expected 'from' after '3'."),
    ],
)
def test_malformed_arithmetic_says_why(text: str, expected: str) -> None:
    reply = ask(text)
    assert reply.startswith(expected)
    assert reply.endswith(HELP)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 ^ 1001", "that exponent is too large for me (limit 1000)"),
        ("1.5 ^ 2000", "that exponent is too large for me (limit 1000)"),
        ("10 ^ 1000", "that result is too large for me (more than 1000 digits)"),
        ("99 ^ 1000", "that result is too large for me (more than 1000 digits)"),
        ("(10 ^ 500) ^ 3", "that result is too large for me (more than 1000 digits)"),
        ("10 ^ 999 * 10 ^ 999", "that result is too large for me (more than 1000 digits)"),
        ("9" * 1200 + " + 1", "that number is too large for me (more than 1000 digits)"),
        ("2 ^ 0.5 * 10 ^ 400", "that result is too large for me"),
        ("(-8) ^ 0.5", "that power is not a real number (a negative base with a fractional exponent)"),
        ("square root of -4", "cannot take the square root of a negative number"),
        ("1 + " * 600 + "1", "that is too long for me (limit 2000 characters)"),
    ],
)
def test_bounds_and_impossible_results_are_replies(text: str, expected: str) -> None:
    assert ask(text) == expected


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    assert "nested too deeply (limit 100)" in ask("(" * 150 + "1 + 1" + ")" * 150)
    assert "nested too deeply" in ask("-" * 500 + "1")
    assert ask("(" * 50 + "1 + 1" + ")" * 50) == "2"


def test_the_largest_allowed_results_are_quick_and_exact() -> None:
    started = time.monotonic()
    assert ask("10 ^ 999") == "1" + "0" * 999
    assert ask("2 ^ 1000") == str(2**1000)
    assert ask("(2 ^ 1000) squared squared") == "that result is too large for me (more than 1000 digits)"
    assert time.monotonic() - started < 0.5


def test_format_number() -> None:
    assert format_number(Fraction(132)) == "132"
    assert format_number(4.0) == "4"
    assert format_number(-0.0) == "0"
    assert format_number(Fraction(1, 8)) == "0.125"
    assert format_number(Fraction(-7, 2)) == "-3.5"
    assert format_number(math.pi) == "3.141592654"
    assert format_number(1e300) == "1e+300"


def test_answer_reports_how_it_read_the_question() -> None:
    result = answer("What is 12 times the sum of 1 and 2?")
    assert result.text == "36"
    assert result.expression == "12 * (1 + 2)"


async def test_calc_brain_reply_carries_the_expression() -> None:
    brain = make_brain("calc", agent="calc-1")
    request = BrainRequest(
        agent="calc-1",
        text="What is 12 times 11?",
        data={},
        sender="u",
        channel_id="c",
        channel_type="consulting",
    )
    reply = await brain.reply(request)
    assert reply.text == "132"
    assert reply.data == {"expression": "12 * 11", "result": "132"}
    help_reply = await brain.reply(
        BrainRequest(agent="calc-1", text="hi", data={}, sender="u", channel_id="c", channel_type="consulting")
    )
    assert help_reply.text == HELP
    assert help_reply.data == {}


# ---------------------------------------------------------------- property: calc agrees with Python

_OPS = ["+", "-", "*", "/", "**"]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3, top: bool = True) -> tuple[str, Fraction | None]:
    """(text, exact value or None for a division by zero), built from small ints, fully parenthesised.

    The top level is always an operation: a bare number is not a question (calc answers it with help).
    """
    if depth == 0 or (not top and draw(st.booleans())):
        n = draw(st.integers(min_value=-30, max_value=30))
        return (f"({n})" if n < 0 else str(n)), Fraction(n)
    op = draw(st.sampled_from(_OPS))
    left_text, left = draw(expressions(depth - 1, top=False))
    if op == "**":  # keep powers small, with an int exponent, as Python would compute them exactly
        exponent = draw(st.integers(min_value=0, max_value=4))
        value = None if left is None else left**exponent
        return f"({left_text}) ** {exponent}", value
    right_text, right = draw(expressions(depth - 1, top=False))
    text = f"({left_text} {op} {right_text})"
    if left is None or right is None:
        return text, None
    if op == "+":
        return text, left + right
    if op == "-":
        return text, left - right
    if op == "*":
        return text, left * right
    return text, (None if right == 0 else left / right)


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_calc_matches_python(case: tuple[str, Fraction | None]) -> None:
    text, exact = case
    got = ask(text)
    python_value = _python_value(text)
    if exact is None:
        assert got == DIV_ZERO
        assert python_value is None
        return
    assert python_value is not None
    if exact.denominator == 1:
        assert got == str(exact.numerator)
        assert math.isclose(python_value, exact, rel_tol=1e-9, abs_tol=1e-9)  # Python's floats may be inexact
    else:
        assert math.isclose(float(got), python_value, rel_tol=1e-9, abs_tol=1e-9)


def _python_value(text: str) -> float | None:
    # The test's own text, built above from ints and operators only; calc itself never evaluates Python.
    try:
        return eval(text, {"__builtins__": {}}, {})
    except ZeroDivisionError:
        return None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=-20, max_value=20), min_size=2, max_size=6),
    st.lists(st.sampled_from(["+", "-", "*", "/"]), min_size=5, max_size=5),
)
def test_calc_matches_python_precedence_without_parentheses(numbers: list[int], ops: list[str]) -> None:
    text = str(numbers[0])
    for op, n in zip(ops, numbers[1:], strict=False):
        text += f" {op} {n}"  # e.g. "3 - -4 * 2 / 5": unary minus and precedence as Python has them
    got = ask(text)
    python_value = _python_value(text)
    if python_value is None:
        assert got == DIV_ZERO
    else:
        assert math.isclose(float(got), python_value, rel_tol=1e-9, abs_tol=1e-9)
