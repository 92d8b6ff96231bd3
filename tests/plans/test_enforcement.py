"""Every enforcement setting × violation kind (reference §1.5): the exact violations recorded,
what happens to the message, and the exact ``context.protocols`` written."""

from __future__ import annotations

from typing import Any

import pytest

from mainstem.plans import yaml_format
from mainstem.plans.enforcement import CompiledPlan, Controls, Enforcement, decide

PLAN = CompiledPlan(
    yaml_format.loads(
        """\
plan: web
events:
  Order Completed:
    properties:
      order_id: {type: string, required: true}
      total: {type: number, required: true}
      currency: {type: string, enum: [USD, EUR]}
      debug: any
  Signed Up:
    - version: 1
      properties: {plan: string}
    - version: 2
      properties:
        plan: {type: string, required: true}
        seats: integer
identify:
  traits:
    email: {type: string, required: true}
    age: integer
group:
  traits:
    name: {type: string, required: true}
common:
  context:
    type: object
    properties:
      library: {type: object, required: true}
  properties:
    type: object
    properties:
      debug: boolean
  traits:
    type: object
    properties:
      age: {type: integer, minimum: 0}
"""
    )
)
LIB = {"library": {"name": "analytics.js", "version": "2.0"}}


def track(event: str = "Order Completed", **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "messageId": "m1",
        "properties": properties,
        "context": dict(LIB),
    }


def identify(**traits: Any) -> dict[str, Any]:
    return {"type": "identify", "messageId": "m1", "traits": traits, "context": dict(LIB)}


ORDER = {"order_id": "o1", "total": 12.5}
TOTAL_TYPE = ("Invalid Type", "properties.total", "Invalid type. Expected: number, given: string")
UNPLANNED_COUPON = (
    "Unplanned Property",
    "properties.coupon",
    "properties.coupon is not in the tracking plan",
)


def protocols(
    omitted: list[str], on_violation: list[str], violations: list[tuple[str, str, str]]
) -> dict[str, Any]:
    return {
        "sourceId": "web",
        "omitted": omitted,
        "omitted_on_violation": on_violation,
        "violations": [{"type": t, "field": f, "description": d} for t, f, d in violations],
    }


CASES: list[tuple[str, dict[str, Any], Enforcement, list[tuple[str, ...]], Any]] = [
    (
        "planned and valid: untouched",
        track(**ORDER),
        Enforcement(track=Controls("block", "omit", "block", "omit", "block")),
        [],
        "same",
    ),
    (
        "unplanned event, allow",
        track("Order Complete", **ORDER),
        Enforcement(),
        [
            (
                "Unplanned Event",
                "event",
                'event "Order Complete" is not in the tracking plan',
                "allowed",
            )
        ],
        "same",
    ),
    (
        "unplanned event, block",
        track("Order Complete", **ORDER),
        Enforcement(track=Controls(unplanned_events="block")),
        [
            (
                "Unplanned Event",
                "event",
                'event "Order Complete" is not in the tracking plan',
                "blocked",
            )
        ],
        None,
    ),
    (
        "unplanned property, allow",
        track(**ORDER, coupon="X"),
        Enforcement(),
        [(*UNPLANNED_COUPON, "allowed")],
        "same",
    ),
    (
        "unplanned property, omit",
        track(**ORDER, coupon="X"),
        Enforcement(track=Controls(unplanned_fields="omit")),
        [(*UNPLANNED_COUPON, "omitted")],
        {"properties": ORDER, "protocols": protocols(["coupon"], [], [])},
    ),
    (
        "violation, allow",
        track(order_id="o1", total="12"),
        Enforcement(),
        [(*TOTAL_TYPE, "allowed")],
        "same",
    ),
    (
        "violation, event blocked",
        track(order_id="o1", total="12"),
        Enforcement(track=Controls(event_on_violation="block")),
        [(*TOTAL_TYPE, "blocked")],
        None,
    ),
    (
        "violation, properties omitted",
        track(order_id="o1", total="12", currency="GBP"),
        Enforcement(track=Controls(fields_on_violation="omit")),
        [
            (
                "Enum",
                "properties.currency",
                'properties.currency must be one of the following: "USD", "EUR"',
                "omitted",
            ),
            (*TOTAL_TYPE, "omitted"),
        ],
        {
            "properties": {"order_id": "o1"},
            "protocols": protocols(
                [],
                ["currency", "total"],
                [
                    (
                        "Enum",
                        "properties.currency",
                        'properties.currency must be one of the following: "USD", "EUR"',
                    ),
                    TOTAL_TYPE,
                ],
            ),
        },
    ),
    (
        "missing required property cannot be omitted",
        track(order_id="o1"),
        Enforcement(track=Controls(fields_on_violation="omit")),
        [("Required", "properties.total", "properties.total is required", "allowed")],
        "same",
    ),
    (
        "omitting unplanned and violating properties together",
        track(order_id="o1", total="12", coupon="X"),
        Enforcement(track=Controls(unplanned_fields="omit", fields_on_violation="omit")),
        [(*TOTAL_TYPE, "omitted"), (*UNPLANNED_COUPON, "omitted")],
        {
            "properties": {"order_id": "o1"},
            "protocols": protocols(["coupon"], ["total"], [TOTAL_TYPE]),
        },
    ),
    (
        "common schema, allow",
        track(**ORDER, debug="yes"),
        Enforcement(),
        [
            (
                "Invalid Type",
                "properties.debug",
                "Invalid type. Expected: boolean, given: string",
                "allowed",
            )
        ],
        "same",
    ),
    (
        "common schema, block",
        {**track(**ORDER), "context": {}},
        Enforcement(track=Controls(common_on_violation="block")),
        [("Required", "context.library", "context.library is required", "blocked")],
        None,
    ),
    (
        "common schema, omit properties",
        track(**ORDER, debug="yes"),
        Enforcement(track=Controls(common_on_violation="omit")),
        [
            (
                "Invalid Type",
                "properties.debug",
                "Invalid type. Expected: boolean, given: string",
                "omitted",
            )
        ],
        {
            "properties": ORDER,
            "protocols": protocols(
                [],
                ["debug"],
                [
                    (
                        "Invalid Type",
                        "properties.debug",
                        "Invalid type. Expected: boolean, given: string",
                    )
                ],
            ),
        },
    ),
    (
        "event version 2 from context.protocols.event_version",
        {**track("Signed Up", seats="3"), "context": {**LIB, "protocols": {"event_version": 2}}},
        Enforcement(),
        [
            ("Required", "properties.plan", "properties.plan is required", "allowed"),
            (
                "Invalid Type",
                "properties.seats",
                "Invalid type. Expected: integer, given: string",
                "allowed",
            ),
        ],
        "same",
    ),
    (
        "no event version: the oldest",
        track("Signed Up", seats="3"),
        Enforcement(),
        [
            (
                "Unplanned Property",
                "properties.seats",
                "properties.seats is not in the tracking plan",
                "allowed",
            )
        ],
        "same",
    ),
    (
        "a version that is not a whole number: the oldest",
        {**track("Signed Up"), "context": {**LIB, "protocols": {"event_version": "2"}}},
        Enforcement(),
        [],
        "same",
    ),
    (
        "identify: unplanned and violating traits omitted, protocols kept",
        {
            **identify(email="a@b.c", age="x", nickname="z"),
            "context": {**LIB, "protocols": {"event_version": 1}},
        },
        Enforcement(identify=Controls(unplanned_fields="omit", fields_on_violation="omit")),
        [
            (
                "Invalid Type",
                "traits.age",
                "Invalid type. Expected: integer, given: string",
                "omitted",
            ),
            (
                "Unplanned Property",
                "traits.nickname",
                "traits.nickname is not in the tracking plan",
                "omitted",
            ),
        ],
        {
            "traits": {"email": "a@b.c"},
            "protocols": {
                "event_version": 1,
                **protocols(
                    ["nickname"],
                    ["age"],
                    [
                        (
                            "Invalid Type",
                            "traits.age",
                            "Invalid type. Expected: integer, given: string",
                        )
                    ],
                ),
            },
        },
    ),
    (
        "identify: traits are never blocked by their rule, the common schema can",
        identify(age=-1),
        Enforcement(identify=Controls(event_on_violation="block", common_on_violation="block")),
        [
            ("Required", "traits.email", "traits.email is required", "allowed"),
            ("Minimum", "traits.age", "Must be greater than or equal to 0", "blocked"),
        ],
        None,
    ),
    (
        "group: violations allowed",
        {"type": "group", "messageId": "m1", "groupId": "g", "traits": {"name": 5}, "context": LIB},
        Enforcement(identify=Controls(fields_on_violation="omit")),
        [
            (
                "Invalid Type",
                "traits.name",
                "Invalid type. Expected: string, given: integer",
                "allowed",
            )
        ],
        "same",
    ),
    (
        "group: unplanned traits omitted, common schema omits traits",
        {
            "type": "group",
            "messageId": "m1",
            "groupId": "g",
            "traits": {"name": "Acme", "age": -1, "plan": "pro"},
            "context": LIB,
        },
        Enforcement(group=Controls(unplanned_fields="omit", common_on_violation="omit")),
        [
            (
                "Unplanned Property",
                "traits.age",
                "traits.age is not in the tracking plan",
                "omitted",
            ),
            (
                "Unplanned Property",
                "traits.plan",
                "traits.plan is not in the tracking plan",
                "omitted",
            ),
        ],
        {"traits": {"name": "Acme"}, "protocols": protocols(["age", "plan"], [], [])},
    ),
    (
        "identify: the common schema omits a trait",
        identify(email="a@b.c", age=-1),
        Enforcement(identify=Controls(common_on_violation="omit")),
        [("Minimum", "traits.age", "Must be greater than or equal to 0", "omitted")],
        {
            "traits": {"email": "a@b.c"},
            "protocols": protocols(
                [], ["age"], [("Minimum", "traits.age", "Must be greater than or equal to 0")]
            ),
        },
    ),
    (
        "page: only the common schema",
        {"type": "page", "name": "Home", "messageId": "m1", "properties": {}, "context": {}},
        Enforcement(track=Controls(unplanned_events="block", unplanned_fields="omit")),
        [("Required", "context.library", "context.library is required", "allowed")],
        "same",
    ),
]


@pytest.mark.parametrize(
    ("message", "enforcement", "findings", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_enforcement(
    message: dict[str, Any],
    enforcement: Enforcement,
    findings: list[tuple[str, ...]],
    expected: Any,
) -> None:
    original = repr(message)
    decision = decide(message, PLAN, enforcement, "web")
    assert [
        (f.violation.type, f.violation.field, f.violation.description, f.action)
        for f in decision.findings
    ] == findings
    assert repr(message) == original  # the input is never changed
    if expected is None:
        assert decision.message is None
    elif expected == "same":
        assert decision.message is message
    else:
        assert decision.message is not None
        section = "traits" if "traits" in expected else "properties"
        assert decision.message[section] == expected[section]
        assert decision.message["context"]["protocols"] == expected["protocols"]
        assert decision.message["context"]["library"] == LIB["library"]


def test_violations_read_as_the_style_guide_says() -> None:
    decision = decide(track(order_id="o1", total="12"), PLAN, Enforcement(), "web")
    [finding] = decision.findings
    assert finding.violation.message("web", "Order Completed") == (
        'properties.total: expected number, got string "12" '
        '(tracking plan "web", event "Order Completed")'
    )
