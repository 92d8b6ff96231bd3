"""What the linter knows about a source file, the same for every language: calls with their
arguments as plain values, name bindings, consent mentions and comments. Built by
:mod:`mainstem.plans.lint.parser`; every check reads only this."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal[
    "string", "template", "integer", "number", "boolean", "null", "array", "object", "call",
    "name", "member", "other",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Span:
    """Where something starts: 1-based line and column (in characters), and the byte range."""

    line: int
    column: int
    start: int = 0
    end: int = 0

    def contains(self, other: Span) -> bool:
        return self.start <= other.start and other.end <= self.end


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``key: value`` of an object or dict literal."""

    key: str
    key_at: Span
    value: Expr


@dataclass(frozen=True, slots=True)
class Expr:
    """An argument or value: its kind, its source text, and what a literal holds.

    ``value`` is the text of a string literal without interpolation; ``entries`` and ``spread``
    describe an object/dict literal; ``callee`` is the dotted name a call expression calls.
    """

    kind: Kind
    text: str
    at: Span
    value: str | None = None
    entries: tuple[Entry, ...] = ()
    spread: bool = False
    callee: str = ""

    def entry(self, key: str) -> Expr | None:
        for item in self.entries:
            if item.key == key:
                return item.value
        return None


@dataclass(frozen=True, slots=True)
class Scope:
    """The function a call is in (``name`` ``""`` for the module or an anonymous function)."""

    id: int
    name: str
    at: Span


MODULE = Scope(0, "", Span(1, 1))


@dataclass(frozen=True, slots=True)
class Call:
    """``receiver.method(args)``, ``method(args)`` or ``new method(args)``."""

    receiver: str
    method: str
    args: tuple[Expr, ...]
    at: Span
    scope: Scope
    keywords: Mapping[str, Expr] = field(default_factory=dict)
    constructor: bool = False
    splat: bool = False
    """Arguments unpacked from a value (``*args``, ``**kwargs``, ``...args``); positional
    arguments after it are not in ``args``."""

    @property
    def callee(self) -> str:
        return f"{self.receiver}.{self.method}" if self.receiver else self.method


@dataclass(frozen=True, slots=True)
class Binding:
    """A value given a name: an assignment, a declaration, an object key or a keyword argument."""

    name: str
    value: Expr
    at: Span


@dataclass(frozen=True, slots=True)
class Mention:
    """An identifier (variable, attribute, property) whose name is ``name``."""

    name: str
    at: Span
    scope: Scope


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    at: Span


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str
    language: str
    calls: tuple[Call, ...]
    bindings: tuple[Binding, ...]
    mentions: tuple[Mention, ...]
    comments: tuple[Comment, ...]
    scopes: tuple[Scope, ...]
    imports: tuple[str, ...]
    """Modules imported or required (``@segment/analytics-node``, ``segment.analytics``)."""
