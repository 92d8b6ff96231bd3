"""The ``identity:`` section of ``mainstem.yaml``: resolution rules and custom identifiers.

::

    identity:
      identifiers:
        user_id: {limit: 1, priority: 1}
        email: {limit: 5, window: annually, priority: 2}
        anonymous_id: {limit: 5, window: weekly}
        phone: {trait: phone_number, limit: 2}   # a custom type read from traits/properties
      blocked: [abc123, void]                    # added to the default blocked values
      blocked_pattern: "^[0-]*$"                 # null: no pattern

Types not listed keep Segment's defaults (§3.3). Errors name the path and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mainstem.errors import ConfigError
from mainstem.identity.identifiers import CustomIdentifier
from mainstem.identity.rules import DEFAULT_BLOCKED, DEFAULT_BLOCKED_PATTERN, WINDOWS, Limit, Rules

Error = Callable[[str, str], ConfigError]
_KEYS = ("identifiers", "blocked", "blocked_pattern")
_TYPE_KEYS = ("limit", "window", "priority", "trait")
_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.]{0,63}$")


@dataclass(frozen=True)
class IdentitySpec:
    rules: Rules = field(default_factory=Rules)
    custom: tuple[CustomIdentifier, ...] = ()


def parse(raw: object, error: Error) -> IdentitySpec:
    if raw is None:
        return IdentitySpec()
    if not isinstance(raw, dict):
        raise error("identity", "identity must be a mapping with identifiers, blocked")
    for key in raw:
        if key not in _KEYS:
            raise error(f"identity.{key}", f"unknown key {key!r} — allowed: {', '.join(_KEYS)}")
    defaults = Rules()
    limits = dict(defaults.limits)
    priorities = dict(defaults.priorities)
    custom: list[CustomIdentifier] = []
    identifiers = raw.get("identifiers") or {}
    if not isinstance(identifiers, dict):
        raise error("identity.identifiers", "identifiers must be a mapping of type: {limit, ...}")
    for type, options in identifiers.items():
        _type_rules(type, options, limits, priorities, custom, error)
    blocked = raw.get("blocked") or []
    if not isinstance(blocked, list):
        raise error("identity.blocked", "blocked must be a list of values, e.g. [abc123, void]")
    pattern = raw.get("blocked_pattern", DEFAULT_BLOCKED_PATTERN)
    if pattern is not None:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise error(
                "identity.blocked_pattern", f"blocked_pattern is not a regular expression: {exc}"
            ) from None
    return IdentitySpec(
        rules=Rules(
            limits=limits,
            priorities=priorities,
            blocked=DEFAULT_BLOCKED | {str(value) for value in blocked},
            blocked_pattern=None if pattern is None else str(pattern),
        ),
        custom=tuple(custom),
    )


def _type_rules(
    type: str,
    options: Any,
    limits: dict[str, Limit],
    priorities: dict[str, int],
    custom: list[CustomIdentifier],
    error: Error,
) -> None:
    path = f"identity.identifiers.{type}"
    if not _TYPE.match(type):
        raise error(path, f"identifier type {type!r} must be lower-case, e.g. phone or ios.id")
    options = options or {}
    if not isinstance(options, dict):
        raise error(path, f"{type} must be a mapping, e.g. {{limit: 5, window: weekly}}")
    for key in options:
        if key not in _TYPE_KEYS:
            raise error(f"{path}.{key}", f"unknown key {key!r} — allowed: {', '.join(_TYPE_KEYS)}")
    limit = options.get("limit", limits[type].values if type in limits else 5)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise error(f"{path}.limit", f"limit must be a whole number of at least 1, got {limit!r}")
    window = options.get("window", "ever")
    if window not in WINDOWS:
        raise error(f"{path}.window", f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
    limits[type] = Limit(limit, window)
    if "priority" in options:
        priority = options["priority"]
        if isinstance(priority, bool) or not isinstance(priority, int) or priority < 1:
            raise error(
                f"{path}.priority", f"priority must be a whole number from 1, got {priority!r}"
            )
        priorities[type] = priority
    if "trait" in options:
        trait = options["trait"]
        if not isinstance(trait, str) or not trait:
            raise error(f"{path}.trait", "trait must name a trait or property key, e.g. phone")
        custom.append(CustomIdentifier(type, trait))
