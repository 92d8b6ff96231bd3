"""Names split into words, whatever their casing: ``orderTotal``, ``order_total``,
``Order Total`` → ``["order", "total"]``."""

from __future__ import annotations

import re

_HUMPS = re.compile(r"([a-z0-9])([A-Z])|([A-Z]+)([A-Z][a-z])")
_SEPARATORS = re.compile(r"[^0-9A-Za-z]+")


def words(name: str) -> list[str]:
    spaced = _HUMPS.sub(lambda m: f"{m[1] or m[3]} {m[2] or m[4]}", name)
    return [w.lower() for w in _SEPARATORS.split(spaced) if w]


def has_phrase(name: str, phrases: frozenset[str]) -> bool:
    """Whether the words of ``name`` contain one of ``phrases`` (space-separated words)."""
    text = f" {' '.join(words(name))} "
    return any(f" {phrase} " in text for phrase in phrases)


def ends_with_phrase(name: str, phrases: frozenset[str]) -> bool:
    """Whether the words of ``name`` end with one of ``phrases``: ``handleLogOut``, not
    ``logoutButtonLabel``."""
    text = f" {' '.join(words(name))}"
    return any(text.endswith(f" {phrase}") for phrase in phrases)
