"""A subset of Segment's Filter Query Language (reference: segment-governance.md §2.3).

Supported: field paths (``properties.title``, ``\\`` escapes), string / number / boolean / null
literals, lists, ``and`` / ``or`` / ``!`` / parentheses, ``=`` ``!=`` ``>`` ``>=`` ``<`` ``<=``,
``in``, the functions ``contains``, ``match``, ``length``, ``lowercase``, ``uppercase``,
``snakecase``, ``kebabcase``, ``titlecase``, ``typeof``, and ``all`` as a whole condition.

:func:`parse` raises :class:`FqlError` with the position of the problem, so a bad condition is
reported when ``mainstem.yaml`` is loaded, not when an event arrives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class FqlError(ValueError):
    """The condition cannot be parsed (at load time) or evaluated (per event)."""


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Path:
    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Expr
    right: Expr


Expr = Literal | Path | ListOf | Call | Not | Binary

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>[-+]?\d+(?:\.\d+)?)
      | (?P<op>!=|>=|<=|=|>|<|!|\(|\)|\[|\]|,)
      | (?P<word>(?:[A-Za-z0-9_\-$]|\\.)+(?:\.(?:[A-Za-z0-9_\-$]|\\.)+)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "in", "true", "false", "null"}


def _casefold_words(text: str, sep: str) -> str:
    return sep.join(text.lower().split())


_STRING_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "lowercase": str.lower,
    "uppercase": str.upper,
    "snakecase": lambda text: _casefold_words(text, "_"),
    "kebabcase": lambda text: _casefold_words(text, "-"),
    "titlecase": str.title,
}
_ARITY = {"contains": 2, "match": 2, "length": 1, "typeof": 1} | dict.fromkeys(_STRING_FUNCTIONS, 1)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            column = len(text) - len(text[position:].lstrip()) + 1
            raise FqlError(f"unexpected character at column {column}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind), match.start(kind) + 1))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise FqlError(
                f"the condition ends early — expected {value!r}"
                if value
                else "the condition ends early"
            )
        if value is not None and token[1] != value:
            raise FqlError(f"expected {value!r} at column {token[2]}, got {token[1]!r}")
        self.index += 1
        return token

    def at(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[1] == value and token[0] in {"op", "word"}

    def expression(self) -> Expr:
        left = self.conjunction()
        while self.at("or"):
            self.take()
            left = Binary("or", left, self.conjunction())
        return left

    def conjunction(self) -> Expr:
        left = self.unary()
        while self.at("and"):
            self.take()
            left = Binary("and", left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.at("!"):
            self.take()
            return Not(self.unary())
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.operand()
        token = self.peek()
        if token is not None and token[1] in {"=", "!=", ">", ">=", "<", "<=", "in"}:
            self.take()
            return Binary(token[1], left, self.operand())
        return left

    def operand(self) -> Expr:
        kind, value, column = self.take()
        if kind == "string":
            return Literal(re.sub(r"\\(.)", r"\1", value[1:-1]))
        if kind == "number":
            return Literal(float(value) if "." in value else int(value))
        if value == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if value == "[":
            items: list[Expr] = []
            while not self.at("]"):
                items.append(self.operand())
                if not self.at("]"):
                    self.take(",")
            self.take("]")
            return ListOf(tuple(items))
        if kind != "word" or value in {"and", "or", "in"}:
            raise FqlError(f"expected a value at column {column}, got {value!r}")
        if value in {"true", "false"}:
            return Literal(value == "true")
        if value == "null":
            return Literal(None)
        if self.at("("):
            return self.call(value, column)
        parts = re.split(r"(?<!\\)\.", value)
        return Path(tuple(re.sub(r"\\(.)", r"\1", part) for part in parts))

    def call(self, name: str, column: int) -> Call:
        if name not in _ARITY:
            raise FqlError(
                f"unknown function {name!r} at column {column} — known: {', '.join(sorted(_ARITY))}"
            )
        self.take("(")
        args: list[Expr] = []
        while not self.at(")"):
            args.append(self.expression())
            if not self.at(")"):
                self.take(",")
        self.take(")")
        if len(args) != _ARITY[name]:
            raise FqlError(f"{name}() takes {_ARITY[name]} argument(s), got {len(args)}")
        return Call(name, tuple(args))


ALL = Literal(True)


def parse(text: str) -> Expr:
    """Parse a condition; ``all`` matches every event.

    Raises:
        FqlError: the text is not a condition this subset understands.
    """
    if text.strip() == "all":
        return ALL
    parser = _Parser(text)
    if not parser.tokens:
        raise FqlError("the condition is empty — write `all` to match every event")
    expr = parser.expression()
    extra = parser.peek()
    if extra is not None:
        raise FqlError(f"unexpected {extra[1]!r} at column {extra[2]}")
    return expr


def _same(left: Any, right: Any) -> bool:
    """Strict equality: same type and value (``1 = true`` is false, ``1 = 1.0`` is true)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and bool(left == right)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _glob(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                out.append("[" + pattern[index + 1 : end].replace("\\", "\\\\") + "]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out), re.DOTALL)


def _typeof(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if _number(value):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return "object"


def value(expr: Expr, event: Mapping[str, Any]) -> Any:
    """The value of ``expr`` against ``event``; a missing path is ``None``."""
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Path):
        current: Any = event
        for part in expr.parts:
            if not isinstance(current, Mapping):
                return None
            current = current.get(part)
        return current
    if isinstance(expr, ListOf):
        return [value(item, event) for item in expr.items]
    if isinstance(expr, Not):
        return value(expr.operand, event) is not True
    if isinstance(expr, Call):
        return _call(expr, event)
    return _binary(expr, event)


def _call(expr: Call, event: Mapping[str, Any]) -> Any:
    args = [value(arg, event) for arg in expr.args]
    name = expr.name
    if name == "contains":
        return isinstance(args[0], str) and isinstance(args[1], str) and args[1] in args[0]
    if name == "match":
        return (
            isinstance(args[0], str)
            and isinstance(args[1], str)
            and _glob(args[1]).fullmatch(args[0]) is not None
        )
    if name == "length":
        if isinstance(args[0], str):
            return len(args[0].encode("utf-8"))  # Segment counts bytes: length('ア') = 3
        return len(args[0]) if isinstance(args[0], list | Mapping) else 0
    if name == "typeof":
        return _typeof(args[0])
    return _STRING_FUNCTIONS[name](args[0]) if isinstance(args[0], str) else None


def _binary(expr: Binary, event: Mapping[str, Any]) -> Any:
    op = expr.op
    if op == "and":
        return value(expr.left, event) is True and value(expr.right, event) is True
    if op == "or":
        return value(expr.left, event) is True or value(expr.right, event) is True
    left, right = value(expr.left, event), value(expr.right, event)
    if op == "=":
        return _same(left, right)
    if op == "!=":
        return not _same(left, right)
    if op == "in":
        return isinstance(right, list) and any(_same(left, item) for item in right)
    if not (_number(left) and _number(right)):
        return False  # ordering compares numbers only
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    return bool(left <= right)


def matches(expr: Expr, event: Mapping[str, Any]) -> bool:
    """Whether the condition holds for ``event`` (only ``true`` counts)."""
    return value(expr, event) is True
