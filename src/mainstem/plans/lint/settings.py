"""The ``lint:`` section of ``mainstem.yaml`` (or of the file given to ``mainstem lint
--config``): turn checks off or change their severity.

::

    lint:
      checks:
        server-track-without-timestamp: off
        event-name-casing: error
        large-property-value: info

Errors name the path and the fix, like the rest of the workspace file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mainstem.errors import ConfigError
from mainstem.plans.lint.catalog import CHECKS
from mainstem.plans.lint.findings import Check, Severity

Error = Callable[[str, str], ConfigError]
_KEYS = ("checks",)
_LEVELS = ("off", "info", "warning", "error")


@dataclass(frozen=True)
class LintSettings:
    severities: Mapping[str, Severity | None] = field(default_factory=dict)
    """Check id → severity, or ``None`` for a check that is off; absent ids keep defaults."""

    def severity(self, check: Check) -> Severity | None:
        return self.severities.get(check.id, check.severity)


def parse(raw: object, error: Error) -> LintSettings:
    if raw is None:
        return LintSettings()
    if not isinstance(raw, dict):
        raise error(
            "lint", "lint must be a mapping with checks: {check-id: off|info|warning|error}"
        )
    for key in raw:
        if key not in _KEYS:
            raise error(f"lint.{key}", f"unknown key {key!r} — allowed: {', '.join(_KEYS)}")
    checks = raw.get("checks") or {}
    if not isinstance(checks, dict):
        raise error("lint.checks", "checks must be a mapping of check-id: off|info|warning|error")
    severities: dict[str, Severity | None] = {}
    for check_id, level in checks.items():
        path = f"lint.checks.{check_id}"
        if check_id not in CHECKS:
            raise error(path, f"unknown check {check_id!r} — the checks are: {', '.join(CHECKS)}")
        # YAML reads a bare `off` as false
        text = "off" if level is False else str(level).lower()
        if text not in _LEVELS:
            raise error(path, f"{check_id}: {level!r} is not a level — use one of "
                        f"{', '.join(_LEVELS)}")  # fmt: skip
        severities[check_id] = None if text == "off" else Severity[text.upper()]
    return LintSettings(severities)
