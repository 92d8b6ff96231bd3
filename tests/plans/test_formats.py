"""The two plan formats: YAML compiles to Segment's rules, a Segment export round-trips through
YAML unchanged in meaning, and bad files are reported at file:line with the fix."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mainstem.plans import segment_format, yaml_format
from mainstem.plans.model import PlanError

ORDER_RULE: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "description": "Fires when checkout succeeds",
    "labels": {"platform": "web"},
    "properties": {
        "context": {},
        "traits": {"type": "object"},
        "properties": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "description": "Order key"},
                "total": {"type": "number"},
                "currency": {"type": "string", "enum": ["USD", "EUR"]},
                "season": {"type": "string", "pattern": "fall|winter|spring"},
                "coupon": {"type": ["string", "null"]},
                "placed_at": {"type": "string", "format": "date-time"},
                "anything": {},
                "products": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"sku": {"type": "string"}},
                        "required": ["sku"],
                    },
                },
            },
            "required": ["order_id", "total"],
        },
    },
    "required": ["properties"],
}
EXPORT: dict[str, Any] = {
    "trackingPlan": {"name": "Web", "description": "The website"},
    "rules": [
        {"type": "TRACK", "key": "Order Completed", "version": 1, "jsonSchema": ORDER_RULE},
        {
            "type": "TRACK",
            "key": "Order Completed",
            "version": 2,
            "jsonSchema": {**ORDER_RULE, "labels": {}},
        },
        {
            # not Segment's usual envelope: kept verbatim
            "type": "TRACK",
            "key": "Odd",
            "version": 1,
            "jsonSchema": {"type": "object", "additionalProperties": False},
        },
        {
            "type": "IDENTIFY",
            "key": None,
            "version": 1,
            "jsonSchema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "context": {},
                    "traits": {
                        "type": "object",
                        "properties": {"email": {"type": "string", "format": "email"}},
                        "required": ["email"],
                    },
                },
                "required": ["traits"],
            },
        },
        {
            "type": "COMMON",
            "key": None,
            "version": 1,
            "jsonSchema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "context": {
                        "type": "object",
                        "properties": {"userAgent": {"not": {"pattern": "bot"}}},
                    }
                },
            },
        },
    ],
}


def _meaning(text: str) -> list[tuple[str, Any, int, str]]:
    """Rules with required lists sorted: the order of ``required`` means nothing."""

    def canon(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: sorted(v) if k == "required" and isinstance(v, list) else canon(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [canon(v) for v in value]
        return value

    plan = segment_format.loads(text)
    return sorted(
        (r.type, r.key, r.version, json.dumps(canon(r.schema), sort_keys=True)) for r in plan.rules
    )


def test_a_segment_export_round_trips_through_yaml() -> None:
    original = json.dumps(EXPORT)
    as_yaml = yaml_format.dumps(segment_format.loads(original))
    back = segment_format.dumps(yaml_format.loads(as_yaml))
    assert _meaning(back) == _meaning(original)
    assert "rules:" in as_yaml and "key: Odd" in as_yaml  # the odd rule kept verbatim
    assert "  Order Completed:\n  - version: 1\n" in as_yaml


def test_the_yaml_format_reads_as_written() -> None:
    plan = yaml_format.loads(
        """\
plan: web
events:
  Order Completed:
    description: Fires when checkout succeeds
    properties:
      order_id: {type: string, required: true}
      placed_at: date-time
      products:
        type: array
        items:
          type: object
          properties:
            sku: {type: string, required: true}
"""
    )
    [rule] = plan.rules
    assert (rule.type, rule.key, rule.version) == ("TRACK", "Order Completed", 1)
    assert rule.schema["properties"]["properties"] == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "placed_at": {"type": "string", "format": "date-time"},
            "products": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}},
                    "required": ["sku"],
                },
            },
        },
        "required": ["order_id"],
    }
    assert yaml_format.dumps(plan) == (
        "plan: web\n"
        "events:\n"
        "  Order Completed:\n"
        "    description: Fires when checkout succeeds\n"
        "    properties:\n"
        "      order_id:\n"
        "        type: string\n"
        "        required: true\n"
        "      placed_at: date-time\n"
        "      products:\n"
        "        type: array\n"
        "        items:\n"
        "          type: object\n"
        "          properties:\n"
        "            sku:\n"
        "              type: string\n"
        "              required: true\n"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("events: {}\n", "plan.yaml:1: add the plan's name: `plan: web`"),
        ("plan: web\nevent: {}\n", "plan.yaml:2: unknown key 'event' — allowed: plan, "
         "description, events, pages, screens, identify, group, common, rules"),
        (
            "plan: web\nevents:\n  A:\n    properties:\n      total: Number\n",
            "plan.yaml:5: unknown type 'Number' — did you mean `number`? (types: string, "
            "number, integer, boolean, object, array, null, any, date-time)",
        ),
        (
            "plan: web\nevents:\n  A:\n    version: 0\n",
            "plan.yaml:4: version must be a whole number, 1 or more",
        ),
        (
            "plan: web\nevents:\n  A:\n    propertes: {}\n",
            "plan.yaml:4: unknown key 'propertes' — allowed: description, version, labels, "
            "properties",
        ),
        (
            "plan: web\nevents:\n  A:\n  - {version: 1}\n  - {version: 1}\n",
            'plan.yaml:1: the plan defines "A" version 1 twice — keep one',
        ),
        (
            "plan: web\nrules:\n- type: TRACK\n  key: A\n  jsonSchema: {type: strin}\n",
            "plan.yaml:5: not a valid JSON Schema draft-07: 'strin' is not valid under any of "
            "the given schemas",
        ),
    ],
)  # fmt: skip
def test_yaml_errors_name_the_line_and_the_fix(text: str, error: str) -> None:
    with pytest.raises(PlanError) as caught:
        yaml_format.loads(text)
    assert str(caught.value) == error


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"name": "x"}', 'plan.json:1: a Segment export has a "rules" list — export it with '
         "the Public API"),
        (
            '{"name": "x", "rules": [\n  {"type": "TRAK", "key": "A", "jsonSchema": {}}\n]}',
            "plan.json:2: rule type 'TRAK' is not one of TRACK, IDENTIFY, GROUP, PAGE, "
            "SCREEN, COMMON",
        ),
        (
            '{"name": "x", "rules": [\n  {"type": "TRACK", "jsonSchema": {}}\n]}',
            'plan.json:2: a TRACK rule needs the event name: "key": "Order Completed"',
        ),
    ],
)  # fmt: skip
def test_segment_errors_name_the_line_and_the_fix(text: str, error: str) -> None:
    with pytest.raises(PlanError) as caught:
        segment_format.loads(text)
    assert str(caught.value) == error
