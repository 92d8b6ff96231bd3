"""Reading a stored Segment message the way vendor mappings need it (pure).

Stored messages are normalized by the gateway (segment-ingestion.md §2.10), but user data
(properties, traits, context) is whatever the SDK sent: every accessor here tolerates missing
keys, ``null`` (treated exactly like absent, §2.1) and wrong types.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mainstem import timestamps

Message = Mapping[str, Any]

PLACEHOLDER_IDS = frozenset(
    {
        "",
        "0",
        "-1",
        "anon",
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "undefined",
        "00000000-0000-0000-0000-000000000000",
    }
)
"""Identifier values that mean "no identifier"; Mixpanel rejects them as ``distinct_id`` and
Amplitude as ``user_id`` / ``device_id``, so a mapping never sends them."""

_INSERT_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def text(value: object) -> str | None:
    """A non-empty string; numbers become strings (some SDKs send numeric ids)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def number(value: object) -> float | int | None:
    """A number; numeric strings (``"12.5"``) count, booleans do not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            return None
        if not math.isfinite(parsed):  # "1e400", "nan": no vendor takes them
            return None
        return int(parsed) if parsed.is_integer() and "." not in value else parsed
    return None


def dig(message: Message, path: str) -> Any:
    """The value at a dotted path (``context.page.url``), or ``None``."""
    current: Any = message
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def identifier(value: object) -> str | None:
    found = text(value)
    if found is None or found.strip().lower() in PLACEHOLDER_IDS:
        return None
    return found


def user_id(message: Message) -> str | None:
    return identifier(message.get("userId"))


def anonymous_id(message: Message) -> str | None:
    return identifier(message.get("anonymousId"))


def properties(message: Message) -> Mapping[str, Any]:
    return mapping(message.get("properties"))


def traits(message: Message) -> Mapping[str, Any]:
    """Identify and group traits; for other calls, the traits copied into ``context``."""
    if message.get("type") in {"identify", "group"}:
        return mapping(message.get("traits"))
    return mapping(dig(message, "context.traits"))


def trait(message: Message, camel: str, snake: str | None = None) -> Any:
    """A reserved trait in either spelling (``firstName`` / ``first_name``, §2.3)."""
    found = traits(message)
    value = found.get(camel)
    if value is None and snake is not None:
        value = found.get(snake)
    return value


def email(message: Message) -> str | None:
    """The user's email: from traits, then ``context.traits``, then ``properties.email``."""
    for value in (
        mapping(message.get("traits")).get("email"),
        dig(message, "context.traits.email"),
        properties(message).get("email"),
    ):
        found = text(value)
        if found is not None and "@" in found:
            return found.strip()
    return None


def micros(message: Message) -> int:
    """When the event happened: ``timestamp``, else ``originalTimestamp``, else ``receivedAt``
    (µs since the epoch; 0 when none parses)."""
    for key in ("timestamp", "originalTimestamp", "receivedAt"):
        parsed = timestamps.parse(message.get(key))
        if parsed is not None:
            return parsed
    return 0


def millis(message: Message) -> int:
    return micros(message) // 1000


def iso(message: Message) -> str:
    return timestamps.format_us(micros(message))


def insert_id(message: Message, suffix: str = "") -> str:
    """A dedupe key for vendors: the messageId when it is 1-36 letters, digits or ``-`` (what
    Mixpanel accepts as ``$insert_id``), else the first 32 hex digits of its SHA-256; the same
    message always gives the same id, so a retried batch is deduplicated downstream."""
    base = text(message.get("messageId")) or ""
    candidate = f"{base}{suffix}"
    if _INSERT_ID.match(candidate):
        return candidate
    return hashlib.sha256(candidate.encode("utf-8")).hexdigest()[:32]


def products(message: Message) -> list[Mapping[str, Any]]:
    """The products of an e-commerce event (segment-ingestion.md §6.1): ``properties.products``
    when present, else the properties themselves when they describe one product."""
    props = properties(message)
    listed = props.get("products")
    if isinstance(listed, list):
        return [item for item in listed if isinstance(item, Mapping)]
    if any(props.get(key) is not None for key in ("product_id", "sku", "name")):
        return [props]
    return []


def currency(props: Mapping[str, Any]) -> str:
    """ISO 4217, upper case; USD when absent, as Segment assumes (§2.4)."""
    found = text(props.get("currency"))
    return found.upper() if found else "USD"


def page_name(message: Message) -> str | None:
    return text(message.get("name")) or text(properties(message).get("name"))


def page_event(message: Message, *, named: bool) -> str:
    """The event name analytics tools give a page or screen call: ``Loaded a Page`` /
    ``Loaded a Screen`` (Segment's consolidated page calls), or with ``named``, ``Viewed <name>
    Page`` when the call has a name."""
    noun = "Screen" if message.get("type") == "screen" else "Page"
    name = page_name(message) if named else None
    return f"Viewed {name} {noun}" if name else f"Loaded a {noun}"


def pick(message: Message, fields: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``{target: value}`` for each ``(dotted path, target)`` in ``fields`` that has a value."""
    result: dict[str, Any] = {}
    for path, target in fields:
        value = dig(message, path)
        if value is not None:
            result[target] = value
    return result


_WORD_BREAK = re.compile(r"[^A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(name: str) -> str:
    """``Order Completed`` → ``order_completed``, ``firstName`` → ``first_name``."""
    return _WORD_BREAK.sub("_", _CAMEL.sub("_", name)).strip("_").lower()


def scalars(values: Mapping[str, Any]) -> dict[str, Any]:
    """The keys whose values are strings, numbers or booleans (no objects, lists or nulls)."""
    return {
        key: value for key, value in values.items() if isinstance(value, str | int | float | bool)
    }


def without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
