"""Google Analytics 4: the Measurement Protocol (pure).

``POST /mp/collect?measurement_id=…&api_secret=…`` with ``{"client_id", "user_id",
"events": [{"name", "params", "timestamp_micros"}]}``; one request carries the events of one
client (``client_id`` = ``context.ga_client_id``, else anonymousId, else userId), at most 25.

Segment's e-commerce spec events become GA4's recommended events (:data:`EVENTS`) with
``items`` built from ``products[]`` (:data:`ITEM_FIELDS`), ``value``, ``currency`` (USD when
absent) and ``transaction_id``; page → ``page_view`` (``page_location``, ``page_title``,
``page_referrer``), screen → ``screen_view``, group → ``join_group``. Other track events are
sent under their snake_case name. GA4's limits are applied, not left to silently drop data:
names of events and parameters are cut to 40 characters, string values to 100, at most 25
parameters per event (``items`` counts as one) and 200 items. GA4 takes no user-only calls:
identify and alias are not accepted by this destination type.

User traits reach GA4 as the request's ``user_properties`` (``{"<name>": {"value": …}}``),
from each call's ``context.traits`` — what Segment's GA4 destination maps to its *User
Properties* field; the Measurement Protocol has no event-less request, so an identify alone
cannot set them. Consecutive events of one client with the same user properties share a
request. What GA4 would refuse or Google's policy forbids is dropped, not sent
(:func:`user_properties`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mainstem.destinations.integrations import message as m
from mainstem.destinations.integrations.integration import (
    Integration,
    Message,
    Option,
    Request,
    Settings,
    chunks,
    reveal,
)

MAX_EVENTS = 25
MAX_BYTES = 130_000 - 10_000
"""A Measurement Protocol request takes at most 25 events and 130 kB (room for the client
fields and up to 25 user properties, ~7 kB at most)."""
MAX_PARAMS = 25
MAX_NAME = 40
MAX_VALUE = 100
MAX_ITEMS = 200

EVENTS: dict[str, str] = {
    "Products Searched": "search",
    "Product List Viewed": "view_item_list",
    "Product Clicked": "select_item",
    "Product Viewed": "view_item",
    "Product Added": "add_to_cart",
    "Product Removed": "remove_from_cart",
    "Cart Viewed": "view_cart",
    "Checkout Started": "begin_checkout",
    "Payment Info Entered": "add_payment_info",
    "Order Completed": "purchase",
    "Order Refunded": "refund",
    "Promotion Viewed": "view_promotion",
    "Promotion Clicked": "select_promotion",
    "Product Added to Wishlist": "add_to_wishlist",
    "Product Shared": "share",
    "Signed Up": "sign_up",
    "Signed In": "login",
}
"""Segment semantic event → GA4 recommended event."""

PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "search": (("query", "search_term"),),
    "view_item_list": (("list_id", "item_list_id"), ("category", "item_list_name")),
    "select_item": (("list_id", "item_list_id"), ("category", "item_list_name")),
    "add_payment_info": (("payment_method", "payment_type"), ("coupon", "coupon")),
    "begin_checkout": (("coupon", "coupon"),),
    "purchase": (
        ("order_id", "transaction_id"),
        ("affiliation", "affiliation"),
        ("coupon", "coupon"),
        ("shipping", "shipping"),
        ("tax", "tax"),
    ),
    "refund": (
        ("order_id", "transaction_id"),
        ("affiliation", "affiliation"),
        ("shipping", "shipping"),
        ("tax", "tax"),
    ),
    "view_promotion": (
        ("promotion_id", "promotion_id"),
        ("name", "promotion_name"),
        ("creative", "creative_name"),
        ("position", "creative_slot"),
    ),
    "share": (("share_via", "method"), ("product_id", "item_id")),
    "sign_up": (("type", "method"),),
    "login": (("type", "method"),),
}
"""Segment property → GA4 parameter, per GA4 event (``select_promotion`` as ``view_promotion``)."""
PARAMS["select_promotion"] = PARAMS["view_promotion"]

ITEM_FIELDS: tuple[tuple[str, str], ...] = (
    ("product_id", "item_id"),
    ("name", "item_name"),
    ("category", "item_category"),
    ("brand", "item_brand"),
    ("variant", "item_variant"),
    ("price", "price"),
    ("quantity", "quantity"),
    ("coupon", "coupon"),
    ("position", "index"),
)
"""Segment product field → GA4 item field (``sku`` stands in for a missing ``product_id``)."""

WITH_ITEMS = frozenset(
    {
        "view_item_list",
        "select_item",
        "view_item",
        "add_to_cart",
        "remove_from_cart",
        "view_cart",
        "begin_checkout",
        "add_payment_info",
        "purchase",
        "refund",
        "add_to_wishlist",
    }
)
WITH_VALUE = WITH_ITEMS - {"view_item_list", "select_item"}
ORDER_VALUE = ("total", "revenue", "value")
"""For purchase and refund, the first present is ``value`` (segment-ingestion.md §6.1)."""

RESERVED_EVENTS = frozenset(
    {
        "ad_activeview",
        "ad_click",
        "ad_exposure",
        "ad_query",
        "ad_reward",
        "adunit_exposure",
        "app_background",
        "app_clear_data",
        "app_exception",
        "app_remove",
        "app_store_refund",
        "app_store_subscription_cancel",
        "app_store_subscription_convert",
        "app_store_subscription_renew",
        "app_update",
        "app_upgrade",
        "dynamic_link_app_open",
        "dynamic_link_app_update",
        "dynamic_link_first_open",
        "error",
        "first_open",
        "first_visit",
        "in_app_purchase",
        "notification_dismiss",
        "notification_foreground",
        "notification_open",
        "notification_receive",
        "os_update",
        "session_start",
        "session_start_with_rollout",
        "user_engagement",
    }
)
"""Event names GA4 reserves for itself (Measurement Protocol reference)."""
RESERVED_PREFIXES = ("firebase_", "ga_", "google_", "gtag_")

MAX_USER_PROPERTIES = 25
MAX_USER_PROPERTY_NAME = 24
MAX_USER_PROPERTY_VALUE = 36
"""GA4's limits: 25 user properties per request, names of 24 characters, values of 36."""
RESERVED_USER_PROPERTIES = frozenset(
    {
        "first_open_after_install",
        "first_open_time",
        "first_visit_time",
        "last_deep_link_referrer",
        "user_id",
    }
)
RESERVED_USER_PREFIXES = ("firebase_", "ga_", "google_")
"""User property names GA4 reserves (Measurement Protocol reference)."""
PERSONAL_TRAITS = frozenset(
    {
        "address",
        "birthday",
        "email",
        "firstName",
        "first_name",
        "lastName",
        "last_name",
        "name",
        "phone",
    }
)
"""Segment's reserved traits that identify a person: Google's policy forbids sending personally
identifiable information to Analytics (it may delete the property's data), so they are not
sent, nor is a value that holds an email address."""
_USER_PROPERTY = re.compile(rf"^[A-Za-z][A-Za-z0-9_]{{0,{MAX_USER_PROPERTY_NAME - 1}}}$")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


def client_id(message: Message) -> str | None:
    return (
        m.text(m.dig(message, "context.ga_client_id"))
        or m.anonymous_id(message)
        or m.user_id(message)
    )


def skip(message: Message, settings: Settings) -> str | None:
    if client_id(message) is None:
        return "Google Analytics 4: no client id (context.ga_client_id, anonymousId or userId)"
    return None


def name(event: str) -> str:
    """A GA4 event or parameter name: letters, digits and ``_``, starting with a letter, at
    most 40 characters."""
    cleaned = _NOT_NAME.sub("_", m.snake(event)).strip("_") or "event"
    if not cleaned[0].isalpha():
        cleaned = f"e_{cleaned}"
    return cleaned[:MAX_NAME]


def event_name(event: str) -> str:
    """A custom event's GA4 name; one GA4 reserves (``session_start``, ``firebase_…``) gets a
    ``custom_`` prefix instead of being dropped by GA4."""
    cleaned = name(event)
    if cleaned in RESERVED_EVENTS or cleaned.startswith(RESERVED_PREFIXES):
        cleaned = f"custom_{cleaned}"[:MAX_NAME]
    return cleaned


def _value(value: Any) -> Any:
    return value[:MAX_VALUE] if isinstance(value, str) else value


def item(product: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for source, target in ITEM_FIELDS:
        value = product.get(source)
        if source == "product_id" and value is None:
            value = product.get("sku")
        if value is not None:
            result[target] = _value(m.number(value) if target in {"price", "quantity"} else value)
    return result


def _money(event: str, props: Mapping[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ORDER_VALUE if event in {"purchase", "refund"} else ("value", "revenue")
    for key in keys:
        value = m.number(props.get(key))
        if value is not None:
            break
    else:
        prices = [(i.get("price"), i.get("quantity", 1)) for i in items]
        value = sum(p * (q or 1) for p, q in prices if isinstance(p, int | float)) or None
    if value is None:
        return {}
    return {"value": value, "currency": m.currency(props)}


def event(message: Message) -> dict[str, Any]:
    """One Measurement Protocol event (without the client fields)."""
    kind = message.get("type")
    props = m.properties(message)
    params: dict[str, Any] = {}
    if kind == "page":
        title = "page_view"
        params = m.without_none(
            {
                "page_location": props.get("url") or m.dig(message, "context.page.url"),
                "page_title": props.get("title") or m.dig(message, "context.page.title"),
                "page_referrer": props.get("referrer") or m.dig(message, "context.page.referrer"),
            }
        )
    elif kind == "screen":
        title = "screen_view"
        params = m.without_none({"screen_name": m.page_name(message)})
    elif kind == "group":
        title = "join_group"
        params = {"group_id": m.text(message.get("groupId"))}
    else:
        segment_name = str(message.get("event"))
        title = EVENTS.get(segment_name) or event_name(segment_name)
        if title in EVENTS.values():
            for source, target in PARAMS.get(title, ()):
                if props.get(source) is not None:
                    params[target] = props[source]
            if title == "search" and not isinstance(params.get("search_term"), str | None):
                params["search_term"] = str(params["search_term"])
            items = [item(p) for p in m.products(message)][:MAX_ITEMS]
            items = [i for i in items if "item_id" in i or "item_name" in i]
            if title in WITH_VALUE:
                params.update(_money(title, props, items))
            if title in WITH_ITEMS and items:
                params["items"] = items
        else:
            params = {name(key): value for key, value in m.scalars(props).items()}
    cleaned: dict[str, Any] = {}
    for key, value in params.items():
        if len(cleaned) >= MAX_PARAMS:
            break
        cleaned[key[:MAX_NAME]] = _value(value)
    return {"name": title, "params": cleaned, "timestamp_micros": m.micros(message)}


def user_properties(traits: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """GA4 ``user_properties`` of user traits: the first 25 that GA4 takes, as they are.

    Dropped: names that are not 1-24 letters, digits or ``_`` starting with a letter, names GA4
    reserves (:data:`RESERVED_USER_PROPERTIES`, :data:`RESERVED_USER_PREFIXES`), the personal
    traits of :data:`PERSONAL_TRAITS`, values that are not strings, numbers or booleans (null,
    objects, lists), strings over 36 characters or holding an email address. Booleans become
    ``"true"`` / ``"false"`` (GA4 takes strings and numbers)."""
    result: dict[str, dict[str, Any]] = {}
    for key, value in traits.items():
        if len(result) >= MAX_USER_PROPERTIES:
            break
        if (
            not _USER_PROPERTY.match(key)
            or key in RESERVED_USER_PROPERTIES
            or key.startswith(RESERVED_USER_PREFIXES)
            or key in PERSONAL_TRAITS
        ):
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, str):
            if len(value) > MAX_USER_PROPERTY_VALUE or _EMAIL.search(value):
                continue
        elif not isinstance(value, int | float):
            continue
        result[key] = {"value": value}
    return result


def requests(messages: Sequence[Message], settings: Settings) -> list[Request]:
    query = (
        ("measurement_id", str(settings.get("measurement_id"))),
        ("api_secret", reveal(settings, "api_secret")),
    )
    by_client: dict[tuple[str, str | None], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for message in messages:
        cid = client_id(message)
        assert cid is not None, "skip() lets only messages with a client id through"
        user = user_properties(m.mapping(m.dig(message, "context.traits")))
        by_client.setdefault((cid, m.user_id(message)), []).append((event(message), user))
    result = []
    for (cid, uid), pairs in by_client.items():
        # user_properties belong to the request: a change of them starts a new one
        for user, run in itertools.groupby(pairs, key=lambda pair: pair[1]):
            events = [found for found, _ in run]
            for group in chunks(events, count=MAX_EVENTS, size=MAX_BYTES):
                body: dict[str, Any] = {"client_id": cid}
                if uid is not None:
                    body["user_id"] = uid
                if user:
                    body["user_properties"] = user
                body["events"] = group
                result.append(Request("/mp/collect", body, query))
    return result


INTEGRATION = Integration(
    type="ga4",
    display_name="Google Analytics 4",
    endpoint="https://www.google-analytics.com",
    options=(
        Option("measurement_id", "The web stream's measurement id (G-XXXXXXX).", required=True),
        Option("api_secret", "A Measurement Protocol API secret.", required=True, secret=True),
    ),
    types=("track", "page", "screen", "group"),
    batch_size=25,
    max_batch=500,
    requests=requests,
    skip=skip,
)
