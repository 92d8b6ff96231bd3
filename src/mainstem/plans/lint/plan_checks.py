"""The checks against a tracking plan: each call site's literal event name and properties.
Calls whose event is not a literal are left to dynamic-event-name. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mainstem.plans.lint import catalog
from mainstem.plans.lint.findings import Check, Hit
from mainstem.plans.lint.messages import Message
from mainstem.plans.lint.syntax import Expr, Span
from mainstem.plans.model import Rule, TrackingPlan

_JSON_TYPES = {
    "string": "string", "template": "string", "integer": "integer", "number": "number",
    "boolean": "boolean", "null": "null", "array": "array", "object": "object",
}  # fmt: skip


def _hit(check: Check, at: Span, message: str) -> Hit:
    return Hit(check, at.line, at.column, message)


def plan_checks(messages: Sequence[Message], plan: TrackingPlan) -> Iterator[Hit]:
    rules = plan.track_rules()
    for message in messages:
        if message.type != "track" or message.event is None or message.event.value is None:
            continue
        event = message.event.value
        versions = rules.get(event)
        if not versions:
            hint = difflib.get_close_matches(event, list(rules), n=1)
            yield _hit(
                catalog.UNPLANNED_EVENT,
                message.event.at,
                f'event "{event}" is not in tracking plan "{plan.name}"'
                + (f' — did you mean "{hint[0]}"?' if hint else " — add it to the plan"),
            )
            continue
        if message.properties is not None and message.properties.kind == "object":
            yield from _properties(message.properties, versions, f'(tracking plan "{plan.name}", '
                                   f'event "{event}")')  # fmt: skip


def _properties(literal: Expr, versions: Sequence[Rule], where: str) -> Iterator[Hit]:
    planned: dict[str, Any] = {}
    for rule in versions:  # a key planned in any version is planned
        sub = _section(rule)
        fields = sub.get("properties", {})
        planned.update(fields if isinstance(fields, Mapping) else {})
    latest = _section(versions[-1])
    required = latest.get("required", [])
    for entry in literal.entries:
        if entry.key not in planned:
            yield _hit(catalog.UNPLANNED_PROPERTY, entry.key_at, f"properties.{entry.key}: not "
                       f"planned {where}")  # fmt: skip
            continue
        got = _JSON_TYPES.get(entry.value.kind)
        wanted = _types(planned[entry.key])
        integer_as_number = got == "integer" and "number" in wanted
        if got is not None and wanted and got not in wanted and not integer_as_number:
            yield _hit(
                catalog.PROPERTY_TYPE_MISMATCH,
                entry.value.at,
                f"properties.{entry.key}: expected {' or '.join(wanted)}, got {got} "
                f"{entry.value.text} {where}",
            )
    if not literal.spread and isinstance(required, list):
        present = {entry.key for entry in literal.entries}
        for name in required:
            if name not in present:
                yield _hit(
                    catalog.MISSING_REQUIRED_PROPERTY,
                    literal.at,
                    f"properties.{name}: required but missing {where}",
                )


def _section(rule: Rule) -> Mapping[str, Any]:
    section = rule.schema.get("properties", {}).get("properties", {})
    return section if isinstance(section, Mapping) else {}


def _types(schema: Any) -> list[str]:
    if not isinstance(schema, Mapping):
        return []
    kinds = schema.get("type")
    if isinstance(kinds, str):
        return [kinds]
    return [k for k in kinds if isinstance(k, str)] if isinstance(kinds, list) else []
