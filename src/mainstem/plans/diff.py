"""What changed between two tracking plans, rule by rule and property by property: pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mainstem.plans.model import Rule, TrackingPlan


@dataclass(frozen=True, slots=True)
class Change:
    kind: Literal["added", "removed", "changed"]
    rule: str
    """``track "Order Completed" v1``, ``identify``, ``common``."""
    field: str | None = None
    """``properties.total`` (``None``: the whole rule)."""
    before: str | None = None
    after: str | None = None

    def __str__(self) -> str:
        sign = {"added": "+", "removed": "-", "changed": "~"}[self.kind]
        what = f"{self.rule} {self.field}" if self.field else self.rule
        if self.kind == "changed":
            return f"{sign} {what}: {self.before} → {self.after}"
        return f"{sign} {what}"


def diff(old: TrackingPlan, new: TrackingPlan) -> list[Change]:
    """Changes from ``old`` to ``new``, in a stable order."""
    before = {_key(rule): rule for rule in old.rules}
    after = {_key(rule): rule for rule in new.rules}
    changes: list[Change] = []
    for key in sorted(before.keys() | after.keys(), key=_order):
        label = _label(key)
        if key not in after:
            changes.append(Change("removed", label))
        elif key not in before:
            changes.append(Change("added", label))
        elif before[key].schema != after[key].schema:
            changes.extend(_fields(label, before[key], after[key]))
    return changes


def _fields(label: str, old: Rule, new: Rule) -> list[Change]:
    section = old.section()
    old_fields = _section(old.schema, section)
    new_fields = _section(new.schema, section)
    if old_fields is None or new_fields is None:
        return [Change("changed", label, None, _show(old.schema), _show(new.schema))]
    prefix = f"{section}." if section else ""
    changes: list[Change] = []
    old_required, new_required = _required(old, section), _required(new, section)
    for name in sorted(old_fields.keys() | new_fields.keys()):
        where = prefix + name
        if name not in new_fields:
            changes.append(Change("removed", label, where))
        elif name not in old_fields:
            note = " (required)" if name in new_required else ""
            changes.append(Change("added", label, where + note))
        else:
            if old_fields[name] != new_fields[name]:
                changes.append(
                    Change(
                        "changed", label, where, _show(old_fields[name]), _show(new_fields[name])
                    )
                )
            if (name in old_required) != (name in new_required):
                changes.append(
                    Change(
                        "changed",
                        label,
                        where,
                        "required" if name in old_required else "optional",
                        "required" if name in new_required else "optional",
                    )
                )
    if not changes:  # the difference is elsewhere in the rule (description, labels, ...)
        changes.append(Change("changed", label, None, _show(old.schema), _show(new.schema)))
    return changes


def _section(schema: Mapping[str, Any], section: str | None) -> Mapping[str, Any] | None:
    node: Any = schema.get("properties", {}).get(section) if section else schema
    if not isinstance(node, Mapping):
        return None
    properties = node.get("properties", {})
    return properties if isinstance(properties, Mapping) else None


def _required(rule: Rule, section: str | None) -> set[str]:
    node: Any = rule.schema.get("properties", {}).get(section) if section else rule.schema
    required = node.get("required", []) if isinstance(node, Mapping) else []
    return set(required) if isinstance(required, list) else set()


def _key(rule: Rule) -> tuple[str, str, int]:
    return (rule.type, rule.key or "", rule.version)


def _order(key: tuple[str, str, int]) -> tuple[int, str, int]:
    order = ("TRACK", "PAGE", "SCREEN", "IDENTIFY", "GROUP", "COMMON")
    return (order.index(key[0]), key[1], key[2])


def _label(key: tuple[str, str, int]) -> str:
    kind, name, version = key
    if name:
        return f'{kind.lower()} "{name}"' + (f" v{version}" if version != 1 else "")
    return kind.lower()


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
