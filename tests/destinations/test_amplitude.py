"""Amplitude through a real courier against a loopback HTTP V2 API that enforces its documented
request format (api_key, events, id length rules) and error answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mainstem.destinations.spec import Destination
from mainstem.secret import Secret
from tests.destinations.conftest import Pipeline
from tests.destinations.vendors import (
    BURST,
    TIME_MS,
    Call,
    Form,
    Refusal,
    Reply,
    Start,
    Vendor,
    deliver,
    destination,
    flaky,
    ok,
    stamped,
)

KEY = "amp-api-key"


_GROUP_OPERATIONS = {
    "$set",
    "$setOnce",
    "$add",
    "$append",
    "$prepend",
    "$unset",
    "$remove",
    "$preInsert",
    "$postInsert",
    "$clearAll",
}
FORMS = frozenset({"/groupidentify"})
"""Amplitude's Group Identify API takes a form; the HTTP V2 API takes JSON."""


def amplitude(call: Call) -> bytes:
    """What api2.amplitude.com/2/httpapi and /groupidentify accept."""
    body = call.body
    if call.path == "/groupidentify":
        return _group_identify(body)
    if call.path != "/2/httpapi":
        raise Refusal(404, f"no route {call.path}")
    if call.size > 1_000_000:
        raise Refusal(413, "Payload too large")
    if not isinstance(body, dict) or body.get("api_key") != KEY:
        raise Refusal(400, "invalid_api_key")
    events = body.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= 2000:
        raise Refusal(400 if not events else 413, "1 to 2000 events")
    shortest = body.get("options", {}).get("min_id_length", 5)
    for index, event in enumerate(events):
        ids = [event.get(key) for key in ("user_id", "device_id") if key in event]
        if not isinstance(event.get("event_type"), str) or not ids:
            raise Refusal(400, f"events_with_missing_fields [{index}]")
        if any(not isinstance(value, str) or len(value) < shortest for value in ids):
            raise Refusal(400, f"events_with_invalid_fields [{index}] (id length)")
        if not isinstance(event.get("time"), int) or not isinstance(event.get("insert_id"), str):
            raise Refusal(400, f"events_with_invalid_fields [{index}] (time, insert_id)")
    return json.dumps({"code": 200, "events_ingested": len(events)}).encode()


def _group_identify(body: Form) -> bytes:
    """The Group Identify API: form fields ``api_key`` and ``identification``, a JSON object or
    array of ``{"group_type", "group_value", "group_properties": {<operation>: {...}}}``."""
    if set(body.fields) != {"api_key", "identification"}:
        raise Refusal(400, f"form fields api_key and identification, got {sorted(body.fields)}")
    if body.fields["api_key"] != KEY:
        raise Refusal(400, "invalid_api_key")
    try:
        entries = json.loads(body.fields["identification"])
    except ValueError as exc:
        raise Refusal(400, "identification is not JSON") from exc
    for index, entry in enumerate(entries if isinstance(entries, list) else [entries]):
        if not isinstance(entry, dict) or set(entry) - {
            "group_type",
            "group_value",
            "group_properties",
        }:
            raise Refusal(400, f"identification [{index}]: unknown fields")
        if not all(
            isinstance(entry.get(key), str) and entry[key] for key in ("group_type", "group_value")
        ):
            raise Refusal(400, f"identification [{index}]: group_type and group_value")
        operations = entry.get("group_properties")
        if (
            not isinstance(operations, dict)
            or not operations
            or set(operations) - _GROUP_OPERATIONS
        ):
            raise Refusal(400, f"identification [{index}]: group_properties operations")
        if not all(isinstance(value, dict) for value in operations.values()):
            raise Refusal(400, f"identification [{index}]: an operation takes an object")
    return b"success"


def amplitude_api(script: Callable[[int], Reply] = ok) -> Vendor:
    return Vendor(amplitude, script, forms=FORMS)


def amplitude_destination(url: str, **options: Any) -> Destination:
    settings = {"api_key": Secret(KEY), "revenue_per_product": False, "group_type": "company"}
    return destination("amplitude", url, settings | options)


def base(**fields: Any) -> dict[str, Any]:
    """The fields every mapped event has (fixed time, ``msg-0`` insert id)."""
    return {"time": TIME_MS, "insert_id": "msg-0", "library": "mainstem"} | fields


ORDER = {
    "type": "track",
    "event": "Order Completed",
    "userId": "user-1",
    "properties": {
        "order_id": "o-1",
        "revenue": 30.0,
        "currency": "USD",
        "products": [
            {"product_id": "p-1", "price": 10.0, "quantity": 2},
            {"sku": "s-2", "price": 10.0},
        ],
    },
}
PRODUCTS = ORDER["properties"]["products"]  # type: ignore[index]

CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = [
    (
        "track: event_properties, context fields, user properties from context.traits",
        {
            "type": "track",
            "event": "Song Played",
            "userId": "user-1",
            "anonymousId": "anon-1",
            "properties": {"title": "So What"},
            "context": {
                "ip": "203.0.113.9",
                "os": {"name": "Android", "version": "14"},
                "device": {"model": "Pixel 8", "manufacturer": "Google"},
                "locale": "en-GB",
                "app": {"version": "3.1.0"},
                "traits": {"plan": "pro"},
            },
        },
        {},
        [
            base(
                event_type="Song Played",
                user_id="user-1",
                device_id="anon-1",
                ip="203.0.113.9",
                os_name="Android",
                os_version="14",
                device_manufacturer="Google",
                device_model="Pixel 8",
                language="en-GB",
                app_version="3.1.0",
                event_properties={"title": "So What"},
                user_properties={"$set": {"plan": "pro"}},
            )
        ],
    ),
    (
        "Order Completed: revenue on the order, one Product Purchased per product",
        ORDER,
        {},
        [
            base(
                event_type="Order Completed",
                user_id="user-1",
                event_properties=ORDER["properties"],
                revenue=30.0,
            ),
            base(
                event_type="Product Purchased",
                user_id="user-1",
                insert_id="msg-0-0",
                event_properties=PRODUCTS[0],
            ),
            base(
                event_type="Product Purchased",
                user_id="user-1",
                insert_id="msg-0-1",
                event_properties=PRODUCTS[1],
            ),
        ],
    ),
    (
        "Order Completed with revenue_per_product: price and quantity on the products",
        ORDER,
        {"revenue_per_product": True},
        [
            base(
                event_type="Order Completed", user_id="user-1", event_properties=ORDER["properties"]
            ),
            base(
                event_type="Product Purchased",
                user_id="user-1",
                insert_id="msg-0-0",
                event_properties=PRODUCTS[0],
                price=10.0,
                quantity=2,
                productId="p-1",
                revenueType="Purchase",
            ),
            base(
                event_type="Product Purchased",
                user_id="user-1",
                insert_id="msg-0-1",
                event_properties=PRODUCTS[1],
                price=10.0,
                quantity=1,
                productId="s-2",
                revenueType="Purchase",
            ),
        ],
    ),
    (
        "identify: $identify with user_properties $set",
        {"type": "identify", "userId": "user-2", "traits": {"email": "a@b.co", "plan": "pro"}},
        {},
        [
            base(
                event_type="$identify",
                user_id="user-2",
                user_properties={"$set": {"email": "a@b.co", "plan": "pro"}},
            )
        ],
    ),
    (
        "group without traits: $identify with groups, no Group Identify",
        {"type": "group", "userId": "user-3", "groupId": "acme"},
        {"group_type": "account"},
        [base(event_type="$identify", user_id="user-3", groups={"account": "acme"})],
    ),
    (
        "page with a name: Viewed <name> Page",
        {"type": "page", "anonymousId": "anon-4", "name": "Pricing", "properties": {"x": 1}},
        {},
        [base(event_type="Viewed Pricing Page", device_id="anon-4", event_properties={"x": 1})],
    ),
    (
        "screen without a name: Loaded a Screen",
        {"type": "screen", "anonymousId": "anon-5"},
        {},
        [base(event_type="Loaded a Screen", device_id="anon-5", event_properties={})],
    ),
    (
        "a userId shorter than 5 characters is left out; device_id carries the event",
        {"type": "track", "event": "E", "userId": "u9", "anonymousId": "anon-6"},
        {},
        [base(event_type="E", device_id="anon-6", event_properties={})],
    ),
]


@pytest.mark.parametrize(
    ("message", "options", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_mapping_table(
    message: dict[str, Any],
    options: dict[str, Any],
    expected: list[dict[str, Any]],
    vendor_server: Start,
    pipeline: Pipeline,
    tmp_path: Path,
) -> None:
    api = vendor_server(amplitude_api())
    pipeline.send(*stamped(message))
    steps, state = deliver(pipeline, amplitude_destination(api.url, **options), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    assert api.received() == [("/2/httpapi", {"api_key": KEY, "events": expected})]


def test_min_id_length_is_sent_as_options_and_lets_short_ids_through(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(amplitude_api())
    pipeline.send(*stamped({"type": "track", "event": "E", "userId": "u9"}))
    dest = amplitude_destination(api.url, min_id_length=2)
    steps, state = deliver(pipeline, dest, tmp_path)
    state.close()
    (body,) = api.bodies()
    assert (steps, body["options"], body["events"][0]["user_id"]) == (
        ["delivered"],
        {"min_id_length": 2},
        "u9",
    )


def test_events_without_a_long_enough_id_are_filtered_with_the_reason(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(amplitude_api())
    pipeline.send(*stamped({"type": "track", "event": "E", "userId": "u9", "anonymousId": "a1"}))
    steps, state = deliver(pipeline, amplitude_destination(api.url), tmp_path)
    progress = {p.destination: p for p in state.progress()}["amplitude"]
    state.close()
    assert (steps, progress.filtered, api.received()) == (["filtered"], 1, [])


def test_throttling_and_server_errors_are_retried_until_everything_arrived_once(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(amplitude_api(flaky(*BURST)))
    ids = pipeline.tracks(130, userId="user-long-id")
    steps, state = deliver(pipeline, amplitude_destination(api.url), tmp_path)
    progress = {p.destination: p for p in state.progress()}["amplitude"]
    state.close()
    assert set(steps) == {"delivered"} and api.refused == []
    # Order Completed without products: one event per message
    assert [event["insert_id"] for body in api.bodies() for event in body["events"]] == ids
    assert (progress.delivered, progress.dead, progress.retries) == (130, 0, len(BURST))


def test_a_wrong_api_key_is_final(vendor_server: Start, pipeline: Pipeline, tmp_path: Path) -> None:
    api = vendor_server(amplitude_api())
    pipeline.send(*stamped({"type": "track", "event": "E", "userId": "user-1"}))
    dest = destination("amplitude", api.url, {"api_key": Secret("nope")})
    steps, state = deliver(pipeline, dest, tmp_path)
    reasons = [letter.reason for letter in state.dead_letters("amplitude")]
    state.close()
    assert (steps, reasons) == (["dead"], ['discarded: HTTP 400: {"error": "invalid_api_key"}'])


def test_requests_stay_under_the_1_mb_limit(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(amplitude_api())
    big = {"note": "x" * 3000}
    messages = [
        {"type": "track", "event": "E", "userId": "user-1", "messageId": f"m{n}"}
        | {"properties": big}
        for n in range(500)
    ]
    for start in range(0, 500, 100):
        pipeline.send(*messages[start : start + 100])
    dest = destination("amplitude", api.url, {"api_key": Secret(KEY)}, batch_size=500)
    steps, state = deliver(pipeline, dest, tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    sizes = [call.size for call in api.accepted]
    assert len(sizes) > 1 and max(sizes) <= 1_000_000
    assert [e["insert_id"] for b in api.bodies() for e in b["events"]] == [
        f"m{n}" for n in range(500)
    ]


def _group_identify_calls(api: Vendor) -> list[tuple[str, str, Any]]:
    """``(content type, api_key, parsed identification)`` of each accepted Group Identify."""
    return [
        (
            call.headers["content-type"],
            call.body.fields["api_key"],
            json.loads(call.body.fields["identification"]),
        )
        for call in api.accepted
        if call.path == "/groupidentify"
    ]


GROUP_CASES: list[tuple[str, dict[str, Any], dict[str, Any], tuple[str, str]]] = [
    (
        "group_type setting and groupId",
        {"plan": "team", "name": "Acme", "employees": 40, "address": {"city": "Oslo"}},
        {},
        ("company", "acme"),
    ),
    (
        "group_type_trait and group_value_trait name the type and the value",
        {"kind": "workspace", "account_id": 42, "plan": "team"},
        {"group_type_trait": "kind", "group_value_trait": "account_id"},
        ("workspace", "42"),
    ),
    (
        "the named traits are absent: group_type setting and groupId",
        {"plan": "team"},
        {"group_type_trait": "kind", "group_value_trait": "account_id", "group_type": "org"},
        ("org", "acme"),
    ),
]


@pytest.mark.parametrize(
    ("traits", "options", "group"), [c[1:] for c in GROUP_CASES], ids=[c[0] for c in GROUP_CASES]
)
def test_group_traits_go_to_the_group_identify_api(
    traits: dict[str, Any],
    options: dict[str, Any],
    group: tuple[str, str],
    vendor_server: Start,
    pipeline: Pipeline,
    tmp_path: Path,
) -> None:
    api = vendor_server(amplitude_api())
    message = {"type": "group", "userId": "user-3", "groupId": "acme", "traits": traits}
    pipeline.send(*stamped(message))
    steps, state = deliver(pipeline, amplitude_destination(api.url, **options), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    group_type, group_value = group
    assert [path for path, _ in api.received()] == ["/2/httpapi", "/groupidentify"]
    assert api.bodies("/2/httpapi") == [
        {
            "api_key": KEY,
            "events": [
                base(event_type="$identify", user_id="user-3", groups={group_type: group_value})
            ],
        }
    ]
    assert _group_identify_calls(api) == [
        (
            "application/x-www-form-urlencoded",
            KEY,
            [
                {
                    "group_type": group_type,
                    "group_value": group_value,
                    "group_properties": {"$set": traits},
                }
            ],
        )
    ]


def test_the_group_calls_of_a_batch_share_one_group_identify_request(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(amplitude_api())
    pipeline.send(
        *stamped(
            {"type": "group", "userId": "user-1", "groupId": "acme", "traits": {"plan": "a&b=c"}},
            {"type": "group", "userId": "user-2", "groupId": "acme"},
            {"type": "track", "event": "E", "userId": "user-2"},
            {"type": "group", "userId": "user-2", "groupId": "initech", "traits": {"n": 1}},
        )
    )
    steps, state = deliver(pipeline, amplitude_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    assert [path for path, _ in api.received()] == ["/2/httpapi", "/groupidentify"]
    assert [event["event_type"] for event in api.bodies("/2/httpapi")[0]["events"]] == [
        "$identify",
        "$identify",
        "E",
        "$identify",
    ]
    (call,) = _group_identify_calls(api)
    assert call[2] == [
        {
            "group_type": "company",
            "group_value": "acme",
            "group_properties": {"$set": {"plan": "a&b=c"}},
        },
        {"group_type": "company", "group_value": "initech", "group_properties": {"$set": {"n": 1}}},
    ]


def test_group_identify_is_retried_on_429_without_resending_the_events(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    # /2/httpapi accepted, then /groupidentify throttled once
    api = vendor_server(amplitude_api(flaky((200, {}), (429, {"Retry-After": "0"}))))
    pipeline.send(
        *stamped({"type": "group", "userId": "user-1", "groupId": "g", "traits": {"a": 1}})
    )
    steps, state = deliver(pipeline, amplitude_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused, api.answered) == (["delivered"], [], 3)
    assert [path for path, _ in api.received()] == ["/2/httpapi", "/groupidentify"]


def test_a_group_identify_refused_with_400_is_dead_lettered(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(amplitude_api(flaky((200, {}), (400, {}))))
    pipeline.send(
        *stamped({"type": "group", "userId": "user-1", "groupId": "g", "traits": {"a": 1}})
    )
    steps, state = deliver(pipeline, amplitude_destination(api.url), tmp_path)
    reasons = [letter.reason for letter in state.dead_letters("amplitude")]
    state.close()
    assert (steps, reasons) == (["dead"], ['discarded: HTTP 400: {"error":"try again"}'])
    assert [path for path, _ in api.received()] == ["/2/httpapi"]


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (Call("/groupidentify", {}, {}, {"api_key": KEY}), "/groupidentify takes a form"),
        (Call("/2/httpapi", {}, {}, Form({"api_key": KEY})), "/2/httpapi takes JSON"),
        (
            Call("/groupidentify", {}, {}, Form({"api_key": KEY, "identification": "[{}]"})),
            "identification [0]: group_type and group_value",
        ),
        (
            Call(
                "/groupidentify",
                {},
                {},
                Form(
                    {
                        "api_key": KEY,
                        "identification": json.dumps(
                            [{"group_type": "t", "group_value": "v", "group_properties": {"a": 1}}]
                        ),
                    }
                ),
            ),
            "identification [0]: group_properties operations",
        ),
    ],
    ids=["json body", "form body", "no group", "no operation"],
)
def test_the_fake_group_identify_api_refuses_malformed_requests(call: Call, reason: str) -> None:
    api = amplitude_api()
    status, _, _ = api.handle(call)
    assert (status, api.refused) == (415 if "takes" in reason else 400, [reason])
