"""Identity resolution rules: blocked values, per-type limits with windows, priorities (§3.3).

Defaults mirror Segment: ``user_id`` may hold **1** value ever and ranks first, ``email`` ranks
second, every other type may hold **5** values and ranks after them alphabetically. Blocked
values are left in the payload but never become identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Window = Literal["ever", "daily", "weekly", "monthly", "annually"]

DAY_US = 86_400_000_000
WINDOWS: dict[str, int | None] = {
    "ever": None,
    "daily": DAY_US,
    "weekly": 7 * DAY_US,
    "monthly": 30 * DAY_US,
    "annually": 365 * DAY_US,
}
DEFAULT_LIMIT = 5
MAX_MERGES = 100
"""Segment's hard cap on merges into one profile (``Profile merge limit exceeded``)."""
MAX_IDENTIFIERS = 1000
"""Segment's hard cap on identifiers of one profile (``Identifier mapping limit exceeded``)."""
DEFAULT_BLOCKED: frozenset[str] = frozenset(
    {
        "null",
        "undefined",
        "none",
        "nil",
        "nan",
        "-1",
        "anonymous",
        "test@test.com",
        "[object object]",
    }
)
DEFAULT_BLOCKED_PATTERN = r"^[0-]*$"
"""Zeros and dashes only: ``0``, ``00000000-0000-0000-0000-000000000000`` (§3.3)."""


@dataclass(frozen=True, slots=True)
class Limit:
    values: int
    window: Window = "ever"

    def __str__(self) -> str:
        return f"{self.values} {self.window}"


_DEFAULT = Limit(DEFAULT_LIMIT)


@dataclass(frozen=True)
class Rules:
    """The resolution rules of a space. Types not listed get ``DEFAULT_LIMIT`` ever."""

    limits: Mapping[str, Limit] = field(default_factory=lambda: {"user_id": Limit(1, "ever")})
    priorities: Mapping[str, int] = field(default_factory=lambda: {"user_id": 1, "email": 2})
    blocked: frozenset[str] = DEFAULT_BLOCKED
    """Exact values (compared case-insensitively) that never become identifiers."""
    blocked_pattern: str | None = DEFAULT_BLOCKED_PATTERN
    max_merges: int = MAX_MERGES
    max_identifiers: int = MAX_IDENTIFIERS
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.compile(self.blocked_pattern) if self.blocked_pattern else None
        object.__setattr__(self, "_pattern", pattern)
        object.__setattr__(self, "blocked", frozenset(v.lower() for v in self.blocked))

    def limit(self, type: str) -> Limit:
        return self.limits.get(type) or _DEFAULT

    def rank(self, type: str) -> tuple[int, str]:
        """Sort key: smaller ranks first. Unranked types follow the ranked ones alphabetically,
        from 3 (re-ranked as new types appear, as Segment does)."""
        explicit = self.priorities.get(type)
        if explicit is not None:
            return (explicit, "")
        return (max(self.priorities.values(), default=0) + 1, type)

    def is_blocked(self, value: str) -> bool:
        if value.lower() in self.blocked:
            return True
        if self.blocked_pattern == DEFAULT_BLOCKED_PATTERN:
            return not value.strip("0-")  # the default pattern without the regex engine
        return self._pattern is not None and self._pattern.search(value) is not None
