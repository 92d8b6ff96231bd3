"""Segment's Protocols export: a tracking plan and its rules as the Public API returns them
(reference §1.1–§1.2): ``{"trackingPlan": {...}, "rules": [{type, key, version, jsonSchema}]}``.

Also read: the paginated API answer ``{"data": {"rules": [...]}}`` and a bare list of rules.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from mainstem.plans.document import Document, read
from mainstem.plans.model import RULE_TYPES, Rule, TrackingPlan

_NOT_DEPRECATED = "0001-01-01T00:00:00.000Z"


def loads(text: str, file: str = "plan.json", name: str | None = None) -> TrackingPlan:
    """Parse a Segment export.

    Raises:
        PlanError: with ``file:line``, what is wrong and the fix.
    """
    doc = read(text, file)
    top = doc.value
    prefix = ""
    if isinstance(top, dict) and isinstance(top.get("data"), dict):
        top, prefix = top["data"], "data."
    meta: dict[str, Any] = {}
    if isinstance(top, list):
        rules, path = top, prefix.rstrip(".")
    elif isinstance(top, dict) and isinstance(top.get("rules"), list):
        rules, path = top["rules"], f"{prefix}rules"
        found = top.get("trackingPlan")
        meta = found if isinstance(found, dict) else top
    else:
        raise doc.error("", 'a Segment export has a "rules" list — export it with the Public API')
    plan_name = name or meta.get("name") or meta.get("slug")
    if not isinstance(plan_name, str) or not plan_name:
        raise doc.error(path, 'the export has no plan name — add "trackingPlan": {"name": ...}')
    parsed = tuple(
        parse_rule(doc, f"{path}[{i}]" if path else f"[{i}]", item) for i, item in enumerate(rules)
    )
    return TrackingPlan(
        name=plan_name, rules=parsed, description=str(meta.get("description") or "")
    )


def parse_rule(doc: Document, path: str, item: Any) -> Rule:
    """One ``{type, key, version, jsonSchema}`` rule, its schema checked against draft-07."""
    if not isinstance(item, dict):
        raise doc.error(path, "a rule is a mapping with type, key, version and jsonSchema")
    rule_type = str(item.get("type", "")).upper()
    if rule_type not in RULE_TYPES:
        raise doc.error(
            f"{path}.type" if "type" in item else path,
            f"rule type {item.get('type')!r} is not one of {', '.join(RULE_TYPES)}",
        )
    key = item.get("key")
    if rule_type == "TRACK" and not key:
        raise doc.error(path, 'a TRACK rule needs the event name: "key": "Order Completed"')
    if key is not None and not isinstance(key, str):
        raise doc.error(f"{path}.key", "key must be the event name (a string) or null")
    version = item.get("version", 1)
    if isinstance(version, float) and version.is_integer():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise doc.error(f"{path}.version", "version must be a whole number, 1 or more")
    schema = item.get("jsonSchema")
    if not isinstance(schema, dict):
        raise doc.error(path, "the rule needs a jsonSchema object (JSON Schema draft-07)")
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = ".".join(str(part) for part in exc.absolute_path)
        raise doc.error(
            f"{path}.jsonSchema{'.' + where if where else ''}",
            f"not a valid JSON Schema draft-07: {exc.message}",
        ) from exc
    return Rule(rule_type, key if rule_type != "COMMON" else None, version, schema)


def dumps(plan: TrackingPlan) -> str:
    """The plan as a Segment export, stable (sorted rules, indented) for diffs."""
    rules = sorted(plan.rules, key=lambda r: (RULE_TYPES.index(r.type), r.key or "", r.version))
    document = {
        "trackingPlan": {
            "name": plan.name,
            "slug": _slug(plan.name),
            "description": plan.description,
            "type": "LIVE",
        },
        "rules": [
            {
                "type": rule.type,
                "key": rule.key,
                "version": rule.version,
                "jsonSchema": dict(rule.schema),
                "deprecatedAt": _NOT_DEPRECATED,
            }
            for rule in rules
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())
