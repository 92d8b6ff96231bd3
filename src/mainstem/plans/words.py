"""Names split into words whatever their casing, and put back together in another casing:
``orderTotal``, ``order_total``, ``Order Total`` → order, total. Shared by the linter (matching
names) and codegen (naming generated code). Pure."""

from __future__ import annotations

import re

_HUMPS = re.compile(r"([a-z0-9])([A-Z])|([A-Z]+)([A-Z][a-z])")
_SEPARATORS = re.compile(r"[^0-9A-Za-z]+")


def split(name: str) -> list[str]:
    """The words of ``name``, as written: ``HTMLBody`` → ``["HTML", "Body"]``."""
    spaced = _HUMPS.sub(lambda m: f"{m[1] or m[3]} {m[2] or m[4]}", name)
    return [w for w in _SEPARATORS.split(spaced) if w]


def words(name: str) -> list[str]:
    """The words of ``name`` in lower case."""
    return [w.lower() for w in split(name)]


def has_phrase(name: str, phrases: frozenset[str]) -> bool:
    """Whether the words of ``name`` contain one of ``phrases`` (space-separated words)."""
    text = f" {' '.join(words(name))} "
    return any(f" {phrase} " in text for phrase in phrases)


def ends_with_phrase(name: str, phrases: frozenset[str]) -> bool:
    """Whether the words of ``name`` end with one of ``phrases``: ``handleLogOut``, not
    ``logoutButtonLabel``."""
    text = f" {' '.join(words(name))}"
    return any(text.endswith(f" {phrase}") for phrase in phrases)


def pascal(name: str) -> str:
    """``Order Completed`` → ``OrderCompleted`` (``_`` in front of a leading digit)."""
    joined = "".join(w[:1].upper() + w[1:] for w in split(name)) or "Event"
    return f"_{joined}" if joined[0].isdigit() else joined


def camel(name: str) -> str:
    """``Order Completed`` → ``orderCompleted``, ``HTML Body`` → ``htmlBody``."""
    parts = split(name)
    if not parts:
        return "event"
    return parts[0].lower() + "".join(w[:1].upper() + w[1:] for w in parts[1:])


def snake(name: str) -> str:
    """``Order Completed`` → ``order_completed``."""
    return "_".join(words(name)) or "event"


def unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name2``, ``name3``… if taken; the result is added to ``taken``."""
    base, n = name, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    taken.add(name)
    return name
