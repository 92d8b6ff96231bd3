"""Checks and what they find: each check has a stable id, a default severity and a fix hint."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def sarif_level(self) -> str:
        return {"info": "note"}.get(self.label, self.label)


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    severity: Severity
    summary: str
    fix: str
    needs_plan: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    check: Check
    path: str
    line: int
    column: int
    message: str
    severity: Severity
    fix: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}:{self.column}: {self.severity.label} "
            f"[{self.check.id}] {self.message}"
        )


@dataclass(frozen=True, slots=True)
class Hit:
    """What a check found in one file, before configuration and suppressions apply."""

    check: Check
    line: int
    column: int
    message: str
