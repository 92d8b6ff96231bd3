"""Google Analytics 4 through a real courier against a loopback Measurement Protocol endpoint
that enforces the documented request format and limits. The real /mp/collect answers 2xx even
to invalid hits (only /debug/mp/collect reports them); this one refuses them, so a mapping that
breaks a limit fails the test instead of losing data silently."""

from __future__ import annotations

import re
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

MEASUREMENT_ID = "G-TEST123"
SECRET = "ga-api-secret"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_RESERVED = {"session_start", "first_visit", "first_open", "user_engagement", "app_remove"}
_RESERVED_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag_")
_USER_PROPERTY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,23}$")
_RESERVED_USER_PROPERTIES = {
    "first_open_after_install",
    "first_open_time",
    "first_visit_time",
    "last_deep_link_referrer",
    "user_id",
}
_RESERVED_USER_PREFIXES = ("firebase_", "ga_", "google_")
_BODY_FIELDS = {
    "client_id",
    "user_id",
    "timestamp_micros",
    "user_properties",
    "user_data",
    "consent",
    "non_personalized_ads",
    "events",
}


def ga4(call: Call) -> bytes:
    """What www.google-analytics.com/mp/collect takes (validated as /debug/mp/collect does)."""
    if call.path != "/mp/collect":
        raise Refusal(404, f"no route {call.path}")
    if call.size > 130_000:
        raise Refusal(413, "post body over 130 kB")
    if call.query.get("measurement_id") != MEASUREMENT_ID or call.query.get("api_secret") != SECRET:
        raise Refusal(403, "measurement_id / api_secret")
    body = call.body
    if set(body) - _BODY_FIELDS:
        raise Refusal(400, f"unknown fields {sorted(set(body) - _BODY_FIELDS)}")
    if not isinstance(body.get("client_id"), str) or not isinstance(body.get("user_id", ""), str):
        raise Refusal(400, "client_id")
    _check_user_properties(body.get("user_properties", {}))
    events = body.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= 25:
        raise Refusal(400, "1 to 25 events")
    for event in events:
        name = event.get("name", "")
        params = event.get("params", {})
        reserved = name in _RESERVED or name.startswith(_RESERVED_PREFIXES)
        if not _NAME.match(name) or reserved or len(params) > 25:
            raise Refusal(400, f"event {name!r}")
        for key, value in params.items():
            if not _NAME.match(key) or (isinstance(value, str) and len(value) > 100):
                raise Refusal(400, f"param {key!r}")
        for item in params.get("items", []):
            if "item_id" not in item and "item_name" not in item:
                raise Refusal(400, "an item needs item_id or item_name")
        if not isinstance(event.get("timestamp_micros"), int):
            raise Refusal(400, "timestamp_micros")
    return b""


def _check_user_properties(found: Any) -> None:
    """At most 25, each ``{"<name>": {"value": <string of at most 36 or number>}}``, names of
    1-24 letters, digits or ``_`` starting with a letter, none GA4 reserves."""
    if not isinstance(found, dict) or len(found) > 25:
        raise Refusal(400, "user_properties: an object of at most 25")
    for key, wrapped in found.items():
        reserved = key in _RESERVED_USER_PROPERTIES or key.startswith(_RESERVED_USER_PREFIXES)
        if not _USER_PROPERTY.match(key) or reserved:
            raise Refusal(400, f"user property {key!r}")
        if not isinstance(wrapped, dict) or set(wrapped) != {"value"}:
            raise Refusal(400, f"user property {key!r}: {{value}} expected")
        value = wrapped["value"]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (number or (isinstance(value, str) and len(value) <= 36)):
            raise Refusal(400, f"user property {key!r}: value")


def ga4_destination(url: str, **changes: Any) -> Destination:
    settings = {"measurement_id": MEASUREMENT_ID, "api_secret": Secret(SECRET)}
    return destination("ga4", url, settings, **changes)


ITEM = {"product_id": "p-1", "sku": "s-1", "name": "Tee", "category": "Shirts", "price": 19.0}
GA_ITEM = {
    "item_id": "p-1",
    "item_name": "Tee",
    "item_category": "Shirts",
    "price": 19.0,
}

CASES: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("Products Searched", {"query": "blue tee"}, "search", {"search_term": "blue tee"}),
    (
        "Product List Viewed",
        {"list_id": "l-1", "category": "Shirts", "products": [ITEM]},
        "view_item_list",
        {"item_list_id": "l-1", "item_list_name": "Shirts", "items": [GA_ITEM]},
    ),
    (
        "Product Clicked",
        ITEM,
        "select_item",
        {"item_list_name": "Shirts", "items": [GA_ITEM]},
    ),
    (
        "Product Viewed",
        ITEM | {"currency": "eur", "value": 19.0},
        "view_item",
        {"value": 19.0, "currency": "EUR", "items": [GA_ITEM]},
    ),
    (
        "Product Added",
        ITEM | {"quantity": 2},
        "add_to_cart",
        {"value": 38.0, "currency": "USD", "items": [GA_ITEM | {"quantity": 2}]},
    ),
    (
        "Product Removed",
        ITEM,
        "remove_from_cart",
        {"value": 19.0, "currency": "USD", "items": [GA_ITEM]},
    ),
    (
        "Cart Viewed",
        {"cart_id": "c-1", "products": [ITEM]},
        "view_cart",
        {"value": 19.0, "currency": "USD", "items": [GA_ITEM]},
    ),
    (
        "Checkout Started",
        {"order_id": "o-1", "value": 19.0, "coupon": "SPRING", "products": [ITEM]},
        "begin_checkout",
        {"coupon": "SPRING", "value": 19.0, "currency": "USD", "items": [GA_ITEM]},
    ),
    (
        "Payment Info Entered",
        {"checkout_id": "c-1", "payment_method": "card"},
        "add_payment_info",
        {"payment_type": "card"},
    ),
    (
        "Order Completed",
        {
            "order_id": "o-1",
            "affiliation": "web",
            "total": 27.5,
            "revenue": 19.0,
            "shipping": 5.0,
            "tax": 3.5,
            "currency": "USD",
            "products": [ITEM | {"quantity": 1, "position": 1}],
        },
        "purchase",
        {
            "transaction_id": "o-1",
            "affiliation": "web",
            "shipping": 5.0,
            "tax": 3.5,
            "value": 27.5,
            "currency": "USD",
            "items": [GA_ITEM | {"quantity": 1, "index": 1}],
        },
    ),
    (
        "Order Refunded",
        {"order_id": "o-1", "total": 27.5},
        "refund",
        {"transaction_id": "o-1", "value": 27.5, "currency": "USD"},
    ),
    (
        "Promotion Viewed",
        {"promotion_id": "pr-1", "name": "Spring", "creative": "banner", "position": "top"},
        "view_promotion",
        {
            "promotion_id": "pr-1",
            "promotion_name": "Spring",
            "creative_name": "banner",
            "creative_slot": "top",
        },
    ),
    ("Promotion Clicked", {"promotion_id": "pr-1"}, "select_promotion", {"promotion_id": "pr-1"}),
    (
        "Product Added to Wishlist",
        ITEM,
        "add_to_wishlist",
        {"value": 19.0, "currency": "USD", "items": [GA_ITEM]},
    ),
    (
        "Product Shared",
        {"share_via": "email", "product_id": "p-1"},
        "share",
        {"method": "email", "item_id": "p-1"},
    ),
    ("Signed Up", {"type": "google"}, "sign_up", {"method": "google"}),
    ("Signed In", {"type": "password"}, "login", {"method": "password"}),
    ("Session Start", {"n": 1}, "custom_session_start", {"n": 1}),
    ("Google Ads Clicked", {}, "custom_google_ads_clicked", {}),
    (
        "Video Played",
        {"videoTitle": "Intro", "seconds": 12, "tags": ["a"], "meta": {"x": 1}},
        "video_played",
        {"video_title": "Intro", "seconds": 12},
    ),
]


@pytest.mark.parametrize(
    ("event", "properties", "name", "params"), CASES, ids=[c[0] for c in CASES]
)
def test_ecommerce_and_custom_events_map_to_ga4_events(
    event: str,
    properties: dict[str, Any],
    name: str,
    params: dict[str, Any],
    vendor_server: Start,
    pipeline: Pipeline,
    tmp_path: Path,
) -> None:
    api = vendor_server(Vendor(ga4))
    message = {"type": "track", "event": event, "anonymousId": "cid-1", "properties": properties}
    pipeline.send(*stamped(message))
    steps, state = deliver(pipeline, ga4_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    expected = {"name": name, "params": params, "timestamp_micros": TIME_MS * 1000}
    assert api.received() == [("/mp/collect", {"client_id": "cid-1", "events": [expected]})]


OTHER_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "page → page_view from properties, else context.page",
        {
            "type": "page",
            "anonymousId": "cid-1",
            "properties": {"url": "https://shop.example/a", "title": "A"},
            "context": {"page": {"referrer": "https://ref.example/"}},
        },
        {
            "client_id": "cid-1",
            "events": [
                {
                    "name": "page_view",
                    "params": {
                        "page_location": "https://shop.example/a",
                        "page_title": "A",
                        "page_referrer": "https://ref.example/",
                    },
                    "timestamp_micros": TIME_MS * 1000,
                }
            ],
        },
    ),
    (
        "screen → screen_view; ga_client_id wins over anonymousId; user_id",
        {
            "type": "screen",
            "anonymousId": "anon-1",
            "userId": "user-1",
            "name": "Home",
            "context": {"ga_client_id": "123.456"},
        },
        {
            "client_id": "123.456",
            "user_id": "user-1",
            "events": [
                {
                    "name": "screen_view",
                    "params": {"screen_name": "Home"},
                    "timestamp_micros": TIME_MS * 1000,
                }
            ],
        },
    ),
    (
        "group → join_group",
        {"type": "group", "userId": "user-2", "groupId": "acme"},
        {
            "client_id": "user-2",
            "user_id": "user-2",
            "events": [
                {
                    "name": "join_group",
                    "params": {"group_id": "acme"},
                    "timestamp_micros": TIME_MS * 1000,
                }
            ],
        },
    ),
]


@pytest.mark.parametrize(
    ("message", "body"), [c[1:] for c in OTHER_CASES], ids=[c[0] for c in OTHER_CASES]
)
def test_page_screen_and_group(
    message: dict[str, Any],
    body: dict[str, Any],
    vendor_server: Start,
    pipeline: Pipeline,
    tmp_path: Path,
) -> None:
    api = vendor_server(Vendor(ga4))
    pipeline.send(*stamped(message))
    steps, state = deliver(pipeline, ga4_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    assert api.received() == [("/mp/collect", body)]


def test_ga4_limits_are_applied_to_names_values_and_parameter_counts(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(ga4))
    properties = {f"property number {n:02d} with a rather long name": "v" * 150 for n in range(30)}
    long_event = "A very long custom event name that goes on and on"
    message = {"type": "track", "event": long_event, "anonymousId": "c", "properties": properties}
    pipeline.send(*stamped(message))
    steps, state = deliver(pipeline, ga4_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    (event,) = api.bodies()[0]["events"]
    assert event["name"] == "a_very_long_custom_event_name_that_goes_"
    assert len(event["params"]) == 25
    assert min(event["params"]) == "property_number_00_with_a_rather_long_na"
    assert set(event["params"].values()) == {"v" * 100}


def test_one_request_per_client_with_at_most_25_events(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(ga4))
    messages = [
        {"type": "track", "event": "Clicked", "anonymousId": f"c{n % 2}", "messageId": f"m{n}"}
        for n in range(60)
    ]
    pipeline.send(*messages)
    steps, state = deliver(pipeline, ga4_destination(api.url, batch_size=100), tmp_path)
    state.close()
    assert steps == ["delivered"]
    shape = [(body["client_id"], len(body["events"])) for body in api.bodies()]
    assert shape == [("c0", 25), ("c0", 5), ("c1", 25), ("c1", 5)]


def test_rate_limits_and_server_errors_are_retried_until_everything_arrived_once(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(ga4, flaky(*BURST)))
    for start in range(0, 110, 55):
        pipeline.send(
            *[
                {"type": "track", "event": "Clicked", "anonymousId": "cid-9", "messageId": f"m{n}"}
                | {"properties": {"n": n}}
                for n in range(start, start + 55)
            ]
        )
    steps, state = deliver(pipeline, ga4_destination(api.url), tmp_path)
    progress = {p.destination: p for p in state.progress()}["ga4"]
    state.close()
    assert set(steps) == {"delivered"} and api.refused == []
    numbers = [event["params"]["n"] for body in api.bodies() for event in body["events"]]
    assert numbers == list(range(110))
    assert (progress.delivered, progress.dead, progress.retries) == (110, 0, len(BURST))


def test_a_wrong_api_secret_is_final(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(ga4))
    pipeline.send(*stamped({"type": "track", "event": "E", "anonymousId": "c"}))
    dest = destination(
        "ga4", api.url, {"measurement_id": MEASUREMENT_ID, "api_secret": Secret("x")}
    )
    steps, state = deliver(pipeline, dest, tmp_path)
    reasons = [letter.reason for letter in state.dead_letters("ga4")]
    state.close()
    assert (steps, reasons) == (
        ["dead"],
        ['discarded: HTTP 403: {"error": "measurement_id / api_secret"}'],
    )


def test_equal_requests_of_one_batch_are_all_sent(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    # 50 events that look the same to GA4 (it has no message id): two equal requests of 25
    api = vendor_server(Vendor(ga4))
    same = {"type": "track", "event": "Clicked", "anonymousId": "c"}
    pipeline.send(*stamped(*[same] * 50))
    steps, state = deliver(pipeline, ga4_destination(api.url, batch_size=50), tmp_path)
    state.close()
    assert steps == ["delivered"]
    assert [len(body["events"]) for body in api.bodies()] == [25, 25]


def test_requests_stay_under_the_130_kb_post_body_limit(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(ga4))
    products = [ITEM | {"product_id": f"p-{n}", "brand": "b" * 60} for n in range(60)]
    listed = {"type": "track", "event": "Product List Viewed", "anonymousId": "c"}
    pipeline.send(*stamped(*[listed | {"properties": {"products": products}}] * 25))
    steps, state = deliver(pipeline, ga4_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    sizes = [call.size for call in api.accepted]
    assert len(sizes) > 1 and max(sizes) <= 130_000
    assert sum(len(body["events"]) for body in api.bodies()) == 25


def _track(client: str, traits: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "event": "Clicked", "anonymousId": client}
    if traits is not None:
        message["context"] = {"traits": traits}
    return message | fields


def test_context_traits_become_user_properties_without_what_ga4_refuses(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(ga4))
    traits = {
        "plan": "pro",
        "seats": 12,
        "ltv": 99.5,
        "beta": True,
        "trial": False,
        "exactly_24_characters_ab": "x" * 36,
        "exactly_25_characters_abc": "x",
        "note": "x" * 37,
        "email": "ada@example.com",
        "firstName": "Ada",
        "last_name": "Lovelace",
        "phone": "+47 555 0100",
        "contact": "write to ada@example.com",
        "user_id": "u-1",
        "google_campaign": "x",
        "ga_session": 1,
        "firebase_token": "x",
        "1st_visit": "x",
        "_private": "x",
        "has space": "x",
        "company": {"name": "Acme"},
        "tags": ["a"],
        "gone": None,
    }
    pipeline.send(*stamped(_track("c1", traits, userId="user-1")))
    steps, state = deliver(pipeline, ga4_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    assert api.received() == [
        (
            "/mp/collect",
            {
                "client_id": "c1",
                "user_id": "user-1",
                "user_properties": {
                    "plan": {"value": "pro"},
                    "seats": {"value": 12},
                    "ltv": {"value": 99.5},
                    "beta": {"value": "true"},
                    "trial": {"value": "false"},
                    "exactly_24_characters_ab": {"value": "x" * 36},
                },
                "events": [{"name": "clicked", "params": {}, "timestamp_micros": TIME_MS * 1000}],
            },
        )
    ]


def test_at_most_25_user_properties_the_first_ones(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(ga4))
    traits = {"email": "a@b.co"} | {f"trait_{n:02d}": n for n in range(30)}
    pipeline.send(*stamped(_track("c1", traits)))
    steps, state = deliver(pipeline, ga4_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    (body,) = api.bodies()
    assert body["user_properties"] == {f"trait_{n:02d}": {"value": n} for n in range(25)}


def test_a_change_of_user_properties_starts_a_new_request_of_the_client(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(ga4))
    pipeline.send(
        *stamped(
            _track("c1", {"plan": "free"}),
            _track("c2", {"plan": "team"}),
            _track("c1", {"plan": "free", "email": "a@b.co"}),  # the same once email is dropped
            _track("c1", {"plan": "pro"}),
            _track("c1"),
            _track("c1", {"plan": "pro"}),
        )
    )
    steps, state = deliver(pipeline, ga4_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    shape = [
        (body["client_id"], body.get("user_properties"), len(body["events"]))
        for body in api.bodies()
    ]
    assert shape == [
        ("c1", {"plan": {"value": "free"}}, 2),
        ("c1", {"plan": {"value": "pro"}}, 1),
        ("c1", None, 1),
        ("c1", {"plan": {"value": "pro"}}, 1),
        ("c2", {"plan": {"value": "team"}}, 1),
    ]


@pytest.mark.parametrize(
    ("user_properties", "reason"),
    [
        ({"plan": "pro"}, "user property 'plan': {value} expected"),
        ({"plan": {"value": "x" * 37}}, "user property 'plan': value"),
        ({"beta": {"value": True}}, "user property 'beta': value"),
        ({"a_name_of_25_characters_x": {"value": 1}}, "user property 'a_name_of_25_characters_x'"),
        ({"google_x": {"value": 1}}, "user property 'google_x'"),
        ({"first_open_time": {"value": 1}}, "user property 'first_open_time'"),
        ({f"p{n}": {"value": n} for n in range(26)}, "user_properties: an object of at most 25"),
    ],
)
def test_the_fake_endpoint_refuses_malformed_user_properties(
    user_properties: dict[str, Any], reason: str
) -> None:
    body = {
        "client_id": "c",
        "user_properties": user_properties,
        "events": [{"name": "e", "params": {}, "timestamp_micros": 1}],
    }
    query = {"measurement_id": MEASUREMENT_ID, "api_secret": SECRET}
    with pytest.raises(Refusal) as refused:
        ga4(Call("/mp/collect", query, {}, body))
    assert (refused.value.status, refused.value.reason) == (400, reason)
