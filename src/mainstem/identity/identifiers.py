"""The identifiers a Segment message carries (reference §3.2).

An identifier is a ``(type, value)`` pair. Eleven default user types are read from the fields the
reference names; ``group_id`` keys the ``accounts`` collection. Custom types come from
``context.externalIds`` (all four keys required, type lower-cased) or from a configured
trait/property key (camelCase and snake_case both accepted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

DEFAULT_TYPES: tuple[str, ...] = (
    "user_id",
    "anonymous_id",
    "email",
    "android.id",
    "android.idfa",
    "android.push_token",
    "ios.id",
    "ios.idfa",
    "ios.push_token",
    "ga_client_id",
    "braze_id",
)
MAX_VALUE_CHARS = 500
"""Longer values are never identifiers (Segment drops a ``groupId`` over 500 characters, §3.6)."""
_NUL = "\x00"
"""Values holding U+0000 are never identifiers either: PostgreSQL's text cannot store them, and
no real id contains one, so both profiles stores agree."""


class ExternalId(NamedTuple):
    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


class CustomIdentifier(NamedTuple):
    """A custom type read from ``traits``/``context.traits``/``properties`` under ``key``."""

    type: str
    key: str


def _text(value: object) -> str | None:
    if not isinstance(value, str):  # a string is the common case: one check for it
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None  # None, bool, containers
        value = str(value)
    value = value.strip()
    if not value or len(value) > MAX_VALUE_CHARS or _NUL in value:
        return None
    return value


_EMPTY: Mapping[str, Any] = {}


def _mapping(value: object) -> Mapping[str, Any]:
    # Decoded JSON objects are dicts; ``isinstance(x, dict)`` is far cheaper than the ABC check.
    return value if isinstance(value, dict) else _EMPTY


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key).lstrip("_")


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _email(message: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    for holder in (message.get("traits"), context.get("traits"), message.get("properties")):
        if holder and isinstance(holder, dict) and "email" in holder:
            email = _text(holder["email"])
            if email is not None:
                # Lower-cased: the Profile API is queried with lower-case ids (reference §4).
                return email.lower()
    return None


def _device(context: Mapping[str, Any], found: list[ExternalId]) -> None:
    device = _mapping(context.get("device"))
    kind = device.get("type")
    if not isinstance(kind, str) or kind.lower() not in ("android", "ios"):
        return
    kind = kind.lower()
    device_id = _text(device.get("id"))
    if device_id is not None:
        found.append(ExternalId(f"{kind}.id", device_id))
    idfa = _text(device.get("advertisingId"))
    if idfa is not None and device.get("adTrackingEnabled") is True:
        found.append(ExternalId(f"{kind}.idfa", idfa))
    token = _text(device.get("token"))
    if token is not None:
        found.append(ExternalId(f"{kind}.push_token", token))


def user_identifiers(
    message: Mapping[str, Any], custom: Sequence[CustomIdentifier] = ()
) -> list[ExternalId]:
    """The ``users`` identifiers of ``message``, each once, in a stable order."""
    # The hot path of the identity stage: most messages have only userId/anonymousId and a
    # context without devices or external ids, so every branch checks presence first.
    found: list[ExternalId] = []
    user_id = message.get("userId")
    if user_id is not None and (user_id := _text(user_id)) is not None:
        found.append(ExternalId("user_id", user_id))
    anonymous_id = message.get("anonymousId")
    if anonymous_id is not None and (anonymous_id := _text(anonymous_id)) is not None:
        found.append(ExternalId("anonymous_id", anonymous_id))
    context = message.get("context")
    context = context if isinstance(context, dict) else _EMPTY
    email = _email(message, context)
    if email is not None:
        found.append(ExternalId("email", email))
    if context:
        if "device" in context:
            _device(context, found)
        ga = None
        if "integrations" in context:
            integrations = _mapping(context["integrations"])
            ga = _text(_mapping(integrations.get("Google Analytics")).get("clientId"))
        if ga is None and "integrations" in message:
            integrations = _mapping(message["integrations"])
            ga = _text(_mapping(integrations.get("Google Analytics")).get("clientId"))
        if ga is not None:
            found.append(ExternalId("ga_client_id", ga))
        if "Braze" in context:
            braze = _text(_mapping(context["Braze"]).get("braze_id"))
            if braze is not None:
                found.append(ExternalId("braze_id", braze))
    elif "integrations" in message:
        integrations = _mapping(message["integrations"])
        ga = _text(_mapping(integrations.get("Google Analytics")).get("clientId"))
        if ga is not None:
            found.append(ExternalId("ga_client_id", ga))
    fixed = len(found)  # at most one value of each type so far
    if context and "externalIds" in context:
        _external_ids(context["externalIds"], found)
    for rule in custom:
        value = _custom(message, context, rule.key)
        if value is not None:
            found.append(ExternalId(rule.type, value))
    return list(dict.fromkeys(found)) if len(found) > fixed else found


def _external_ids(external: object, found: list[ExternalId]) -> None:
    if not isinstance(external, list):
        return
    for item in external:
        entry = _mapping(item)
        kind, value = entry.get("type"), _text(entry.get("id"))
        if (
            isinstance(kind, str)
            and kind
            and kind.lower() != "group_id"  # group_id keys the accounts collection
            and value is not None
            and entry.get("collection") == "users"
            and "encoding" in entry
        ):
            found.append(ExternalId(kind.lower(), value))


def _custom(message: Mapping[str, Any], context: Mapping[str, Any], key: str) -> str | None:
    for holder in (message.get("traits"), context.get("traits"), message.get("properties")):
        data = _mapping(holder)
        for name in (key, _snake(key), _camel(key)):
            value = _text(data.get(name))
            if value is not None:
                return value
    return None


def group_identifier(message: Mapping[str, Any]) -> ExternalId | None:
    """The ``accounts`` identifier of a group call (``groupId``), if any."""
    if message.get("type") != "group":
        return None
    group_id = _text(message.get("groupId"))
    return ExternalId("group_id", group_id) if group_id is not None else None
