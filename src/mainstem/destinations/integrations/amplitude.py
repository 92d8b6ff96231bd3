"""Amplitude: the HTTP V2 API (pure).

Every call becomes an event in one ``POST /2/httpapi`` request ``{"api_key", "events",
"options"}`` per batch (up to 2000 events):

* track → ``event_type`` = the event name; properties → ``event_properties``; ``context.traits``
  → ``user_properties``. With ``properties.revenue``: ``revenue``, ``productId``,
  ``revenueType``. **Order Completed** with ``products[]`` also sends one ``Product Purchased``
  event per product (``insert_id`` = the order's plus ``-<index>``); with
  ``revenue_per_product: true`` the products carry ``price``, ``quantity``, ``productId`` and the
  order event no revenue, so revenue is never counted twice.
* page → ``Viewed <name> Page`` (``Loaded a Page`` without a name); screen likewise.
* identify → ``$identify`` with ``user_properties: {"$set": traits}``.
* group → ``$identify`` with ``groups: {<group type>: <group value>}``; with traits, also the
  Group Identify API: one form-encoded ``POST /groupidentify`` per batch, ``api_key`` and
  ``identification`` = a JSON array of ``{"group_type", "group_value", "group_properties":
  {"$set": traits}}``. The group type and value are the traits named by ``group_type_trait``
  and ``group_value_trait`` when both are set and present (Segment's ``groupTypeTrait`` /
  ``groupValueTrait``), else the ``group_type`` setting and the groupId.

``user_id`` = userId and ``device_id`` = anonymousId (else ``context.device.id``), each only when
at least ``min_id_length`` characters long (Amplitude rejects shorter ids with a 400); an event
with neither is skipped. ``insert_id`` comes from the messageId, so Amplitude deduplicates a
retried batch (7 days).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from mainstem.destinations.integrations import message as m
from mainstem.destinations.integrations.integration import (
    Integration,
    Message,
    Option,
    Request,
    Settings,
    chunks,
    form,
    reveal,
)

MAX_EVENTS = 2000
MAX_BYTES = 1_000_000 - 10_000
"""Amplitude answers 413 to more than 2000 events or 1 MB in one request (room for the rest)."""
DEFAULT_MIN_ID_LENGTH = 5
"""Amplitude's default; the ``min_id_length`` setting changes it (sent as ``options``)."""

CONTEXT_FIELDS: tuple[tuple[str, str], ...] = (
    ("context.ip", "ip"),
    ("context.os.name", "os_name"),
    ("context.os.version", "os_version"),
    ("context.device.manufacturer", "device_manufacturer"),
    ("context.device.model", "device_model"),
    ("context.network.carrier", "carrier"),
    ("context.locale", "language"),
    ("context.app.version", "app_version"),
    ("context.location.country", "country"),
    ("context.location.city", "city"),
    ("context.location.latitude", "location_lat"),
    ("context.location.longitude", "location_lng"),
)
"""Segment context field → Amplitude event field."""

_json = msgspec.json.Encoder().encode

ORDER_COMPLETED = "Order Completed"
PRODUCT_PURCHASED = "Product Purchased"


def _min_length(settings: Settings) -> int:
    value = settings.get("min_id_length")
    return int(value) if value is not None else DEFAULT_MIN_ID_LENGTH


def ids(message: Message, settings: Settings) -> dict[str, str]:
    """``user_id`` and ``device_id``, each only when long enough for Amplitude."""
    shortest = _min_length(settings)
    found = {
        "user_id": m.user_id(message),
        "device_id": m.anonymous_id(message) or m.identifier(m.dig(message, "context.device.id")),
    }
    return {key: value for key, value in found.items() if value and len(value) >= shortest}


def skip(message: Message, settings: Settings) -> str | None:
    if not ids(message, settings):
        return (
            f"Amplitude: neither userId nor anonymousId is at least {_min_length(settings)} "
            "characters (min_id_length)"
        )
    return None


def _base(message: Message, settings: Settings, event_type: str) -> dict[str, Any]:
    result: dict[str, Any] = {"event_type": event_type, **ids(message, settings)}
    result["time"] = m.millis(message)
    result["insert_id"] = m.insert_id(message)
    result.update(m.pick(message, CONTEXT_FIELDS))
    session = m.dig(message, "integrations.Amplitude.session_id")
    if isinstance(session, int) and not isinstance(session, bool):
        result["session_id"] = session
    result["library"] = "mainstem"
    return result


def _revenue(props: Any) -> dict[str, Any]:
    revenue = m.number(props.get("revenue"))
    if revenue is None:
        return {}
    return m.without_none(
        {
            "revenue": revenue,
            "productId": m.text(props.get("product_id")),
            "revenueType": m.text(props.get("revenueType") or props.get("revenue_type")),
        }
    )


def group_of(message: Message, settings: Settings) -> tuple[str, str | None]:
    """The Amplitude group type and value of a group call."""
    type_trait = m.text(settings.get("group_type_trait"))
    value_trait = m.text(settings.get("group_value_trait"))
    if type_trait is not None and value_trait is not None:
        traits = m.traits(message)
        group_type = m.text(traits.get(type_trait))
        group_value = m.text(traits.get(value_trait))
        if group_type is not None and group_value is not None:
            return group_type, group_value
    return str(settings.get("group_type") or "company"), m.text(message.get("groupId"))


def identification(message: Message, settings: Settings) -> dict[str, Any] | None:
    """The Group Identify API entry of a group call with traits and a group value."""
    traits = dict(m.traits(message))
    group_type, group_value = group_of(message, settings)
    if not traits or group_value is None:
        return None
    return {
        "group_type": group_type,
        "group_value": group_value,
        "group_properties": {"$set": traits},
    }


def events(message: Message, settings: Settings) -> list[dict[str, Any]]:
    """The Amplitude events of one message (several for an order with products)."""
    kind = message.get("type")
    if kind == "identify":
        event = _base(message, settings, "$identify")
        event["user_properties"] = {"$set": dict(m.traits(message))}
        return [event]
    if kind == "group":
        event = _base(message, settings, "$identify")
        group_type, group_value = group_of(message, settings)
        event["groups"] = {group_type: group_value}
        return [event]
    props = dict(m.properties(message))
    if kind in {"page", "screen"}:
        event = _base(message, settings, m.page_event(message, named=True))
        event["event_properties"] = props
        return [event]
    name = str(message.get("event"))
    event = _base(message, settings, name)
    event["event_properties"] = props
    user = m.mapping(m.dig(message, "context.traits"))
    if user:
        event["user_properties"] = {"$set": dict(user)}
    per_product = bool(settings.get("revenue_per_product"))
    items = m.products(message) if name == ORDER_COMPLETED and "products" in props else []
    if not (per_product and items):
        event.update(_revenue(props))
    result = [event]
    for index, product in enumerate(items):
        item = _base(message, settings, PRODUCT_PURCHASED)
        item["insert_id"] = m.insert_id(message, f"-{index}")
        item["event_properties"] = dict(product)
        if per_product:
            item.update(
                m.without_none(
                    {
                        "price": m.number(product.get("price")),
                        "quantity": int(m.number(product.get("quantity")) or 1),
                        "productId": m.text(product.get("product_id") or product.get("sku")),
                        "revenueType": "Purchase",
                    }
                )
            )
        result.append(item)
    return result


def requests(messages: Sequence[Message], settings: Settings) -> list[Request]:
    """``/2/httpapi`` first (the users join their groups), then ``/groupidentify``."""
    api_key = reveal(settings, "api_key")
    batch: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    for message in messages:
        batch.extend(events(message, settings))
        if message.get("type") == "group":
            entry = identification(message, settings)
            if entry is not None:
                groups.append(entry)
    result = []
    for group in chunks(batch, count=MAX_EVENTS, size=MAX_BYTES):
        body: dict[str, Any] = {"api_key": api_key, "events": group}
        if settings.get("min_id_length") is not None:
            body["options"] = {"min_id_length": _min_length(settings)}
        result.append(Request("/2/httpapi", body))
    # percent-encoding can triple the JSON's size: a third of the limit is always under it
    for group in chunks(groups, count=MAX_EVENTS, size=MAX_BYTES // 3):
        identified = _json(group).decode("utf-8")
        result.append(
            form("/groupidentify", (("api_key", api_key), ("identification", identified)))
        )
    return result


INTEGRATION = Integration(
    type="amplitude",
    display_name="Amplitude",
    endpoint="https://api2.amplitude.com",
    options=(
        Option("api_key", "Project API key (sent in the body).", required=True, secret=True),
        Option("min_id_length", "Shortest user_id / device_id accepted (Amplitude: 5).", "int"),
        Option(
            "revenue_per_product",
            "Order Completed: revenue on each Product Purchased event instead of the order.",
            "bool",
            default=False,
        ),
        Option(
            "group_type",
            "Amplitude group type of group calls (unless group_type_trait names one).",
            default="company",
        ),
        Option(
            "group_type_trait",
            "Group trait whose value is the Amplitude group type (Segment's groupTypeTrait).",
            needs=("group_value_trait",),
        ),
        Option(
            "group_value_trait",
            "Group trait whose value is the group value (Segment's groupValueTrait).",
            needs=("group_type_trait",),
        ),
    ),
    types=("track", "identify", "page", "screen", "group"),
    batch_size=100,
    max_batch=1000,
    requests=requests,
    skip=skip,
)
