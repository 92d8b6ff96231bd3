"""Amplitude through a real courier against a loopback HTTP V2 API that enforces its documented
request format (api_key, events, id length rules) and error answers."""

from __future__ import annotations

import json
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
    Refusal,
    Start,
    Vendor,
    deliver,
    destination,
    flaky,
    stamped,
)

KEY = "amp-api-key"


def amplitude(call: Call) -> bytes:
    """What api2.amplitude.com/2/httpapi accepts."""
    body = call.body
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
        "group: $identify with groups",
        {"type": "group", "userId": "user-3", "groupId": "acme", "traits": {"plan": "team"}},
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
    api = vendor_server(Vendor(amplitude))
    pipeline.send(*stamped(message))
    steps, state = deliver(pipeline, amplitude_destination(api.url, **options), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    assert api.received() == [("/2/httpapi", {"api_key": KEY, "events": expected})]


def test_min_id_length_is_sent_as_options_and_lets_short_ids_through(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(amplitude))
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
    api = vendor_server(Vendor(amplitude))
    pipeline.send(*stamped({"type": "track", "event": "E", "userId": "u9", "anonymousId": "a1"}))
    steps, state = deliver(pipeline, amplitude_destination(api.url), tmp_path)
    progress = {p.destination: p for p in state.progress()}["amplitude"]
    state.close()
    assert (steps, progress.filtered, api.received()) == (["filtered"], 1, [])


def test_throttling_and_server_errors_are_retried_until_everything_arrived_once(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(amplitude, flaky(*BURST)))
    ids = pipeline.tracks(130, userId="user-long-id")
    steps, state = deliver(pipeline, amplitude_destination(api.url), tmp_path)
    progress = {p.destination: p for p in state.progress()}["amplitude"]
    state.close()
    assert set(steps) == {"delivered"} and api.refused == []
    # Order Completed without products: one event per message
    assert [event["insert_id"] for body in api.bodies() for event in body["events"]] == ids
    assert (progress.delivered, progress.dead, progress.retries) == (130, 0, len(BURST))


def test_a_wrong_api_key_is_final(vendor_server: Start, pipeline: Pipeline, tmp_path: Path) -> None:
    api = vendor_server(Vendor(amplitude))
    pipeline.send(*stamped({"type": "track", "event": "E", "userId": "user-1"}))
    dest = destination("amplitude", api.url, {"api_key": Secret("nope")})
    steps, state = deliver(pipeline, dest, tmp_path)
    reasons = [letter.reason for letter in state.dead_letters("amplitude")]
    state.close()
    assert (steps, reasons) == (["dead"], ['discarded: HTTP 400: {"error": "invalid_api_key"}'])


def test_requests_stay_under_the_1_mb_limit(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(amplitude))
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
