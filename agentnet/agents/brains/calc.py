"""The calc brain: arithmetic asked in words or symbols, via a tokenizer and a recursive-descent parser."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from agentnet.agents.brains.base import BrainReply, BrainRequest
from agentnet.agents.brains.options import BrainOptions

# Bounds on the work one question may cause: everything below is then sub-millisecond.
MAX_TEXT = 2000  # characters
MAX_DEPTH = 100  # nesting of parentheses / prefix forms (the parser recurses)
MAX_EXPONENT = 1000
MAX_DIGITS = 1000  # of a result's numerator or denominator
SIGNIFICANT = 10  # digits shown for a non-integer result

HELP = (
    'I do arithmetic, in symbols or words: try "What is 12 times 11?", "(2 + 3) * 4", '
    '"square root of 81", "2 to the power of 10" or "15 percent of 80".'
)
DIV_ZERO = "cannot divide by zero"

Number = Fraction | float  # exact while possible; float once a root or fractional power is involved


class CalcError(Exception):
    """The question has arithmetic in it, but it cannot be answered (the message is the reply)."""


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str  # "num", an operator symbol (+ - * / ^ ( ) %), or a word kind (sqrt, squared, add, to, ...)
    text: str  # as written, for error messages
    value: Fraction | None = None


_UNIT_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
)
_UNITS = {w: i for i, w in enumerate(_UNIT_WORDS.split(" "))}
_TENS = {
    w: 10 * i for i, w in enumerate(("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"), 2)
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}

# Longest phrases first (greedy match); each maps to a token kind.
_PHRASES: list[tuple[tuple[str, ...], str]] = sorted(
    [
        (("raised", "to", "the", "power", "of"), "^"),
        (("to", "the", "power", "of"), "^"),
        (("to", "the", "power"), "^"),
        (("raised", "to"), "^"),
        (("power",), "^"),
        (("plus",), "+"),
        (("added", "to"), "+"),
        (("add",), "add"),
        (("sum", "of"), "add"),
        (("minus",), "-"),
        (("negative",), "-"),
        (("take", "away"), "-"),
        (("subtracted", "from"), "subfrom"),
        (("subtract",), "subtract"),
        (("times",), "*"),
        (("multiplied", "by"), "*"),
        (("multiply",), "multiply"),
        (("product", "of"), "multiply"),
        (("divided", "by"), "/"),
        (("over",), "/"),
        (("divide",), "divide"),
        (("quotient", "of"), "divide"),
        (("square", "root", "of"), "sqrt"),
        (("square", "root"), "sqrt"),
        (("sqrt",), "sqrt"),
        (("squared",), "squared"),
        (("cubed",), "cubed"),
        (("percent", "of"), "pct_of"),
        (("per", "cent", "of"), "pct_of"),
        (("%", "of"), "pct_of"),
        (("percent",), "%"),
        (("per", "cent"), "%"),
        (("x",), "x"),
        (("to",), "to"),
        (("and",), "and"),
        (("from",), "from"),
        (("by",), "by"),
    ],
    key=lambda item: -len(item[0]),
)
_SYMBOLS = {"+": "+", "-": "-", "*": "*", "/": "/", "^": "^", "**": "^", "(": "(", ")": ")", "%": "%"}
_PREFIX_OPS = {"add", "subtract", "multiply", "divide"}
_CONNECTORS = {"to", "and", "from", "by"}
_AND_JOINERS = {"add", "sum", "multiply", "product", "divide", "quotient"}
_OPERATORS = {"+", "-", "*", "/", "^", "%", "sqrt", "squared", "cubed", "pct_of", "subfrom", *_PREFIX_OPS}

_RAW = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)|(?P<sym>\*\*|[-+*/^()%])|(?P<word>[a-z]+)"
)
# Typographic operators: multiplication sign, middle dot, division sign, minus sign, en and em dashes.
_NORMALIZE = str.maketrans({"\u00d7": "*", "\u00b7": "*", "\u00f7": "/", "\u2212": "-", "\u2013": "-", "\u2014": "-"})


def tokenize(text: str) -> list[Tok]:
    """Words and symbols to tokens; words that are not arithmetic are dropped."""
    text = text.lower().translate(_NORMALIZE)
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)  # "twenty-one" is a number, not a subtraction
    raw: list[tuple[str, str]] = [
        (m.lastgroup or "", m.group(0)) for m in _RAW.finditer(text)
    ]  # anything else (punctuation, "?", "=") is dropped
    # "one hundred and five" is one number, unless "and" may join two operands ("add 3 and 5").
    allow_and = not any(w in _AND_JOINERS for _, w in raw)
    out: list[Tok] = []
    i = 0
    while i < len(raw):
        kind, word = raw[i]
        if kind == "num":
            out.append(Tok("num", word, Fraction(word.replace(",", ""))))
            i += 1
            continue
        if word in _UNITS or word in _TENS or word in _SCALES:
            if word in _SCALES and out and out[-1].kind == "num" and out[-1].text[:1].isdigit():
                prev = out.pop()  # "3 thousand", "2.5 million"
                assert prev.value is not None
                out.append(Tok("num", f"{prev.text} {word}", prev.value * _SCALES[word]))
                i += 1
                continue
            value, i, spelled = _number_words(raw, i, allow_and)
            out.append(Tok("num", spelled, Fraction(value)))
            continue
        words = [w for _, w in raw[i : i + 5]]
        for phrase, phrase_kind in _PHRASES:
            if tuple(words[: len(phrase)]) == phrase:
                out.append(Tok(phrase_kind, " ".join(phrase)))
                i += len(phrase)
                break
        else:
            if kind == "sym":
                out.append(Tok(_SYMBOLS[word], word))
            i += 1  # an unknown word: "what", "is", "the", ...
    return _resolve_context(out)


def _number_words(raw: list[tuple[str, str]], i: int, allow_and: bool) -> tuple[int, int, str]:
    """Read one spelled number starting at raw[i]: (value, next index, the words)."""
    total = current = 0
    used: list[str] = []
    while i < len(raw):
        word = raw[i][1]
        if word == "and" and allow_and and used and used[-1] in _SCALES and i + 1 < len(raw) and _small(raw[i + 1][1]):
            i += 1  # "one hundred and five"
            continue
        if word in _SCALES:
            scale = _SCALES[word]
            if scale == 100:
                if current % 1000 >= 100 and used:
                    break  # "one hundred hundred": a new number
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
        elif _small(word):
            value = _UNITS.get(word, _TENS.get(word, 0))
            below = current % 100
            fits = below == 0 or (below >= 20 and below % 10 == 0 and 1 <= value <= 9)
            if used and (value == 0 or not fits):
                break  # "five five" is two numbers
            current += value
        else:
            break
        used.append(word)
        i += 1
    return total + current, i, " ".join(used)


def _small(word: str) -> bool:
    return word in _UNITS or word in _TENS


def _resolve_context(tokens: list[Tok]) -> list[Tok]:
    """'x' is times only between operands; to/and/from/by only matter after add/subtract/multiply/divide."""
    first_prefix = next((i for i, t in enumerate(tokens) if t.kind in _PREFIX_OPS), None)
    out: list[Tok] = []
    for i, tok in enumerate(tokens):
        if tok.kind == "x":
            before = out[-1].kind if out else ""
            after = tokens[i + 1].kind if i + 1 < len(tokens) else ""
            if before in ("num", ")", "squared", "cubed", "%") and after in ("num", "(", "sqrt"):
                out.append(Tok("*", "x"))
            continue
        if tok.kind in _CONNECTORS and (first_prefix is None or i < first_prefix):
            continue
        out.append(tok)
    return out


# ---------------------------------------------------------------- parser (tokens -> tree)

# Tree nodes are tuples: ("num", Fraction), ("neg", a), ("pct", a), ("sqrt", a), (op, a, b) for + - * / ^.
Node = tuple[Any, ...]


class _Parser:
    def __init__(self, tokens: list[Tok]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def parse(self) -> Node:
        node = self.expr()
        if self.pos < len(self.tokens):
            raise CalcError(f"I did not expect '{self.tokens[self.pos].text}' there")
        return node

    def peek(self) -> str:
        return self.tokens[self.pos].kind if self.pos < len(self.tokens) else ""

    def take(self) -> Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expect(self, kinds: tuple[str, ...], after: str) -> Tok:
        if self.peek() in kinds:
            return self.take()
        wanted = " or ".join(f"'{k}'" for k in kinds)
        raise CalcError(f"expected {wanted} after '{after}'")

    def expr(self) -> Node:
        node = self.term()
        while self.peek() in ("+", "-", "subfrom", "add", "subtract"):
            op = self.take().kind
            right = self.term()
            # "3 subtracted from 10" is 10 - 3: the operands swap.
            node = ("-", right, node) if op == "subfrom" else ("+" if op in ("+", "add") else "-", node, right)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek() in ("*", "/", "pct_of", "multiply", "divide", "("):
            op = self.take().kind if self.peek() != "(" else "*"  # "2(3 + 4)": implicit multiplication
            right = self.unary()
            if op == "pct_of":
                node = ("*", ("pct", node), right)
            else:
                node = ("/" if op in ("/", "divide") else "*", node, right)
        return node

    def unary(self) -> Node:
        if self.peek() in ("-", "+"):
            op = self.take()
            operand = self.nested(self.unary)
            return ("neg", operand) if op.kind == "-" else operand
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.peek() == "^":
            self.take()
            return ("^", base, self.nested(self.unary))  # right-associative, and 2^-1 is allowed
        return base

    def postfix(self) -> Node:
        node = self.primary()
        while self.peek() in ("squared", "cubed", "%"):
            kind = self.take().kind
            node = ("pct", node) if kind == "%" else ("^", node, ("num", Fraction(2 if kind == "squared" else 3)))
        return node

    def primary(self) -> Node:
        if self.pos >= len(self.tokens):
            prev = self.tokens[self.pos - 1].text if self.pos else ""
            raise CalcError(f"expected a number after '{prev}'" if prev else "there is no number")
        tok = self.take()
        if tok.kind == "num":
            assert tok.value is not None
            return ("num", tok.value)
        if tok.kind == "(":
            node = self.nested(self.expr)
            self.expect((")",), after=self.tokens[self.pos - 1].text)
            return node
        if tok.kind == "sqrt":
            return ("sqrt", self.nested(self.unary))
        if tok.kind in _PREFIX_OPS:  # "add 3 to 5", "subtract 3 from 10", "multiply 3 by 4", "divide 8 by 2"
            first = self.nested(self.expr)
            joins = {
                "add": ("to", "and"),
                "subtract": ("from",),
                "multiply": ("by", "and"),
                "divide": ("by", "and"),
            }
            self.expect(joins[tok.kind], after=self.tokens[self.pos - 1].text)
            second = self.nested(self.expr)
            if tok.kind == "add":
                return ("+", first, second)
            if tok.kind == "subtract":
                return ("-", second, first)
            return ("*" if tok.kind == "multiply" else "/", first, second)
        raise CalcError(f"I did not expect '{tok.text}' there")

    def nested(self, rule: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CalcError(f"that is nested too deeply (limit {MAX_DEPTH})")
        try:
            return rule()
        finally:
            self.depth -= 1


# ---------------------------------------------------------------- evaluation


def evaluate(node: Node) -> Number:
    """The value of a tree, with bounded work; CalcError (or ZeroDivisionError) if it cannot be had."""
    try:
        return _check(_eval(node))
    except OverflowError:
        raise CalcError("that result is too large for me") from None


def _eval(node: Node) -> Number:
    kind = node[0]
    if kind == "num":
        return _check(node[1], "number")
    if kind == "neg":
        return _check(-_eval(node[1]))
    if kind == "pct":
        return _check(_eval(node[1]) / 100)
    if kind == "sqrt":
        return _sqrt(_eval(node[1]))
    a, b = _eval(node[1]), _eval(node[2])
    if kind == "+":
        return _check(a + b)
    if kind == "-":
        return _check(a - b)
    if kind == "*":
        return _check(a * b)
    if kind == "/":
        return _check(a / b)
    return _power(a, b)


def _digits(n: int) -> int:
    return int(abs(n).bit_length() * 0.30103) + 1  # an upper estimate, without making a decimal string


def _check(value: Number, what: str = "result") -> Number:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CalcError(f"that {what} is too large for me")
    elif _digits(value.numerator) > MAX_DIGITS or _digits(value.denominator) > MAX_DIGITS:
        raise CalcError(f"that {what} is too large for me (more than {MAX_DIGITS} digits)")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise CalcError(f"that exponent is too large for me (limit {MAX_EXPONENT})")
    if isinstance(exponent, Fraction) and exponent.denominator == 1:
        e = int(exponent)
        if isinstance(base, Fraction):
            # Estimate before computing: 999^1000 is cheap, but (10^999)^1000 is not.
            if max(_digits(base.numerator), _digits(base.denominator)) * abs(e) > MAX_DIGITS + abs(e):
                raise CalcError(f"that result is too large for me (more than {MAX_DIGITS} digits)")
            if base == 0 and e < 0:
                raise ZeroDivisionError
            return _check(base**e)
        return _check(base**e)
    if base < 0:
        raise CalcError("that power is not a real number (a negative base with a fractional exponent)")
    if base == 0 and exponent < 0:
        raise ZeroDivisionError
    return _check(float(base) ** float(exponent))


def _sqrt(value: Number) -> Number:
    if value < 0:
        raise CalcError("cannot take the square root of a negative number")
    if isinstance(value, Fraction):
        top, bottom = math.isqrt(value.numerator), math.isqrt(value.denominator)
        if top * top == value.numerator and bottom * bottom == value.denominator:
            return Fraction(top, bottom)  # exact: sqrt(9/4) is 3/2
    return _check(math.sqrt(value))


def format_number(value: Number) -> str:
    """Integers in full; other numbers to 10 significant digits, trailing zeros stripped."""
    if value == 0:
        return "0"  # also -0.0
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        with localcontext() as ctx:
            ctx.prec = SIGNIFICANT
            rounded = (Decimal(value.numerator) / Decimal(value.denominator)).normalize()
        return _plain(rounded)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    with localcontext() as ctx:
        ctx.prec = SIGNIFICANT
        rounded = (+Decimal(value)).normalize()
    return _plain(rounded)


def _plain(value: Decimal) -> str:
    # Plain notation for ordinary magnitudes ("1234.5", "0.0001"), scientific beyond.
    exponent = value.adjusted()
    if -7 < exponent < 16:
        return f"{value:f}"
    return f"{value:e}"


def _literal(value: Fraction) -> str:
    # Literals come from decimal text, so they have an exact finite decimal form: show it unrounded.
    if value.denominator == 1:
        return str(value.numerator)
    with localcontext() as ctx:
        ctx.prec = MAX_TEXT + 10
        return f"{(Decimal(value.numerator) / Decimal(value.denominator)).normalize():f}"


def render(node: Node) -> str:
    """The tree as a conventional expression, for the reply's data (shows how the text was read)."""
    return _render(node)[0]


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "^": 4, "pct": 5, "sqrt": 6, "num": 6}


def _render(node: Node) -> tuple[str, int]:
    kind = node[0]
    prec = _PREC[kind]
    if kind == "num":
        return _literal(node[1]), prec
    if kind == "sqrt":
        return f"sqrt({_render(node[1])[0]})", prec
    if kind in ("neg", "pct"):
        inner, inner_prec = _render(node[1])
        inner = inner if inner_prec > prec else f"({inner})"
        return (f"-{inner}" if kind == "neg" else f"{inner}%"), prec
    left, left_prec = _render(node[1])
    right, right_prec = _render(node[2])
    # ^ is right-associative; + - * / are left-associative.
    left_ok = left_prec > prec or (left_prec == prec and kind != "^")
    right_ok = right_prec > prec or (right_prec == prec and kind in ("+", "*")) or (kind == "^" and right_prec >= prec)
    return f"{left if left_ok else f'({left})'} {kind} {right if right_ok else f'({right})'}", prec


# ---------------------------------------------------------------- the brain


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    expression: str | None = None  # how the question was read, when it was
    ok: bool = False


def answer(text: str) -> Answer:
    """Answer a question in words or symbols; never raises (a reply explains any problem)."""
    if len(text) > MAX_TEXT:
        return Answer(f"that is too long for me (limit {MAX_TEXT} characters)")
    tokens = tokenize(text)
    if not any(t.kind in _OPERATORS for t in tokens):
        return Answer(HELP)
    try:
        tree = _Parser(tokens).parse()
    except CalcError as exc:
        return Answer(f"I could not work that out: {exc}. {HELP}")
    expression = render(tree)
    try:
        value = evaluate(tree)
    except ZeroDivisionError:
        return Answer(DIV_ZERO, expression)
    except CalcError as exc:
        return Answer(str(exc), expression)
    return Answer(format_number(value), expression, ok=True)


class CalcOptions(BrainOptions):
    pass


class CalcBrain:
    name = "calc"

    def __init__(self, options: CalcOptions, *, agent: str) -> None:
        self.agent = agent

    async def reply(self, request: BrainRequest) -> BrainReply:
        # Bounded, but big-number arithmetic is still CPU work: keep it off the event loop.
        result = await asyncio.to_thread(answer, request.text)
        data: dict[str, object] = {}
        if result.expression is not None:
            data["expression"] = result.expression
        if result.ok:
            data["result"] = result.text
        return BrainReply(text=result.text, data=data)

    async def aclose(self) -> None:
        return None
