"""The one model of a tracking plan, whichever file it came from.

A rule's canonical form is Segment's: a JSON Schema draft-07 document over the whole message
(reference §1.2), so a TRACK rule constrains ``properties.properties.<name>`` and an IDENTIFY rule
``properties.traits.<name>``. The readable YAML format compiles to it and Segment exports are it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RuleType = Literal["TRACK", "IDENTIFY", "GROUP", "PAGE", "SCREEN", "COMMON"]
RULE_TYPES: tuple[RuleType, ...] = ("TRACK", "IDENTIFY", "GROUP", "PAGE", "SCREEN", "COMMON")
DRAFT_07 = "http://json-schema.org/draft-07/schema#"


class PlanError(ValueError):
    """A plan file that cannot be used; the message names the place and the fix."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        self.problem = message
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
        super().__init__(f"{where}{message}")


@dataclass(frozen=True)
class Rule:
    type: RuleType
    key: str | None
    """Track/page/screen: the event (or page) name; ``None`` for identify, group and common."""
    version: int
    schema: Mapping[str, Any]
    """JSON Schema draft-07 over the whole message."""

    @property
    def description(self) -> str:
        return str(self.schema.get("description", ""))

    def section(self) -> str | None:
        """The part of the message whose keys are planned by name: ``properties`` or ``traits``."""
        if self.type in ("TRACK", "PAGE", "SCREEN"):
            return "properties"
        if self.type in ("IDENTIFY", "GROUP"):
            return "traits"
        return None

    def planned_names(self) -> frozenset[str] | None:
        """Declared top-level property/trait names; ``None`` when the rule does not say."""
        section = self.section()
        if section is None:
            return None
        sub = self.schema.get("properties", {}).get(section)
        if not isinstance(sub, Mapping) or "properties" not in sub:
            return None
        return frozenset(sub["properties"])


@dataclass(frozen=True)
class TrackingPlan:
    name: str
    rules: tuple[Rule, ...]
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def track_rules(self) -> dict[str, list[Rule]]:
        """Track rules by event name, oldest version first."""
        found: dict[str, list[Rule]] = {}
        for rule in self.rules:
            if rule.type == "TRACK" and rule.key is not None:
                found.setdefault(rule.key, []).append(rule)
        for versions in found.values():
            versions.sort(key=lambda rule: rule.version)
        return found

    def latest_track_rules(self) -> list[Rule]:
        """Each track rule at its highest version, by event name (what Typewriter generates)."""
        return [versions[-1] for _, versions in sorted(self.track_rules().items())]

    def single(self, rule_type: RuleType) -> Rule | None:
        """The identify, group or common rule (the first one when a file has several)."""
        return next((rule for rule in self.rules if rule.type == rule_type), None)


def envelope(section: str, schema: Mapping[str, Any], description: str = "") -> dict[str, Any]:
    """The whole-message schema Segment writes for a rule over ``properties`` or ``traits``."""
    result: dict[str, Any] = {"$schema": DRAFT_07, "type": "object"}
    if description:
        result["description"] = description
    result["properties"] = {"context": {}, "traits": {"type": "object"}}
    if section == "properties":
        result["properties"]["properties"] = dict(schema)
    else:
        result["properties"]["traits"] = dict(schema)
    result["required"] = [section]
    return result
