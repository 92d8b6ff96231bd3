"""Normalizing one Segment message (reference §2–§3): pure, no I/O.

:func:`normalize` takes a message as decoded from the wire and either returns it in the shape
Mainstem stores and forwards, or a :class:`Rejection` carrying Segment's discard code
(reference §1.7). It is deterministic: reprocessing the same log record gives the same result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mainstem import timestamps
from mainstem.ids import assigned_message_id

TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_ID = 100
# Stripped before storing or forwarding (reference §5.5 item 10); `_metadata` is kept because
# its `bundled` list tells destinations what the browser already delivered.
_STRIPPED = ("writeKey", "options")
_MOBILE_LIBRARIES = ("kotlin", "swift", "ios", "android", "react-native", "flutter", "xamarin")


@dataclass(frozen=True, slots=True)
class Rejection:
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Request:
    """What the server knows about the request a message came in."""

    received_at: int
    client: bool = False
    ip: str | None = None


def normalize(
    raw: object,
    request: Request,
    *,
    seed: str,
    path_type: str | None = None,
    envelope: Mapping[str, Any] | None = None,
) -> dict[str, Any] | Rejection:
    """Validate and normalize one message.

    Args:
        raw: the message as decoded from JSON.
        request: the request it came in.
        seed: where the message sits in the log; seeds the messageId assigned when it has none.
        path_type: the type implied by a single-event path; it wins over the body's ``type``.
        envelope: the batch envelope (``sentAt``, ``context``, ``integrations`` apply to every
            element, the element's own keys winning).

    Returns:
        The normalized message, or the reason it was rejected.
    """
    msg = _prepare(raw, path_type)
    if isinstance(msg, Rejection):
        return msg
    if "messageId" not in msg:
        msg["messageId"] = assigned_message_id(request.received_at, seed)

    env = envelope or {}
    for field in ("context", "integrations"):
        own = msg.get(field)
        shared = env.get(field)
        if shared is not None and not isinstance(shared, dict):
            return Rejection(
                f"{field}_not_object",
                f"the batch's {field} must be an object, got {_json_kind(shared)}",
            )
        msg[field] = _merge(shared or {}, own or {})

    context = msg["context"]
    if not isinstance(context.get("library"), dict):
        context["library"] = {"name": "unknown", "version": "unknown"}
    if "ip" not in context and request.ip and (request.client or context.get("direct") is True):
        context["ip"] = request.ip

    _resolve_times(msg, env.get("sentAt"), request.received_at)
    msg["channel"] = _channel(request.client, context)
    msg["version"] = 2

    if msg["type"] == "page" and "category" in msg:
        properties = msg.setdefault("properties", {})
        properties.setdefault("category", msg["category"])
    return msg


def validate(raw: object, path_type: str | None = None) -> Rejection | None:
    """Why ``raw`` would be rejected, or ``None``; the cheap check the gateway runs on
    single-event requests (no timestamps, ids or merging)."""
    result = _prepare(raw, path_type)
    return result if isinstance(result, Rejection) else None


def _prepare(raw: object, path_type: str | None) -> dict[str, Any] | Rejection:
    """A validated shallow copy: nulls dropped, ids stringified, stripped keys removed."""
    if not isinstance(raw, dict):
        return Rejection(
            "message_not_object", f"each message must be a JSON object, got {_json_kind(raw)}"
        )
    # Python sends explicit nulls for unset fields: null is absent, at the top level.
    msg = {key: value for key, value in raw.items() if value is not None}
    for key in _STRIPPED:
        msg.pop(key, None)

    kind = path_type or msg.get("type")
    if kind is None:
        return Rejection(
            "type_not_defined", f"type is missing — it must be one of {', '.join(TYPES)}"
        )
    if kind not in TYPES:
        return Rejection("type_invalid", f"type {kind!r} is not one of {', '.join(TYPES)}")
    msg["type"] = kind

    for field in ("userId", "anonymousId", "groupId", "previousId"):
        if field in msg:
            value = _identifier(msg[field])
            if isinstance(value, Rejection):
                return Rejection(value.code, f"{field}: {value.reason}")
            if value:
                msg[field] = value
            else:
                del msg[field]

    problem = _check_fields(kind, msg)
    if problem is not None:
        return problem

    message_id = msg.get("messageId")
    if message_id is not None:
        if isinstance(message_id, int | float) and not isinstance(message_id, bool):
            message_id = _identifier(message_id)
        if not isinstance(message_id, str) or not message_id:
            return Rejection(
                "message_id_not_string",
                f"messageId must be a non-empty string, got {_json_kind(message_id)}",
            )
        if len(message_id) > MAX_MESSAGE_ID:
            return Rejection(
                "message_id_too_long",
                f"messageId is {len(message_id)} characters; the limit is {MAX_MESSAGE_ID}",
            )
        msg["messageId"] = message_id
    for field in ("context", "integrations"):
        own = msg.get(field)
        if own is not None and not isinstance(own, dict):
            return Rejection(
                f"{field}_not_object", f"{field} must be an object, got {_json_kind(own)}"
            )
    return msg


def _check_fields(kind: str, msg: dict[str, Any]) -> Rejection | None:
    if kind == "alias":
        if "userId" not in msg:
            return Rejection(
                "id_required", "alias needs userId (the new id); previousId is the old one"
            )
    elif "userId" not in msg and "anonymousId" not in msg:
        return Rejection("no_user_anon_id", f"{kind} needs userId or anonymousId")
    if kind == "track":
        if "event" not in msg or msg["event"] == "":
            return Rejection("event_not_defined", "track needs an event name")
        if not isinstance(msg["event"], str):
            return Rejection(
                "event_not_string", f"event must be a string, got {_json_kind(msg['event'])}"
            )
    if kind == "group" and "groupId" not in msg:
        return Rejection("group_id_not_defined", "group needs groupId")
    if (
        kind in ("track", "page", "screen")
        and "properties" in msg
        and not isinstance(msg["properties"], dict)
    ):
        return Rejection(
            "properties_not_object",
            f"properties must be an object, got {_json_kind(msg['properties'])}",
        )
    if kind in ("identify", "group") and "traits" in msg and not isinstance(msg["traits"], dict):
        return Rejection(
            "traits_not_object", f"traits must be an object, got {_json_kind(msg['traits'])}"
        )
    if kind in ("page", "screen"):
        for field in ("name", "category"):
            if field in msg and (not isinstance(msg[field], str) or not msg[field]):
                return Rejection(
                    f"{field}_not_string",
                    f"{field} must be a non-empty string, got {_json_kind(msg[field])}",
                )
    return None


def _identifier(value: object) -> str | Rejection:
    """Ids are strings; numbers are stringified (reference §2.1), an empty string is absent."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return Rejection("id_not_string", "expected a string, got a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return Rejection("id_not_string", f"expected a string, got {_json_kind(value)}")


def _merge(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: ``own`` wins, nested objects present on both sides are merged.

    Iterative, so hostile nesting in a batch envelope cannot exhaust the stack.
    """
    if not base:
        return dict(own)
    result = dict(base)
    stack: list[tuple[dict[str, Any], Mapping[str, Any]]] = [(result, own)]
    while stack:
        into, source = stack.pop()
        for key, value in source.items():
            current = into.get(key)
            if isinstance(value, dict) and isinstance(current, dict):
                merged = dict(current)
                into[key] = merged
                stack.append((merged, value))
            else:
                into[key] = value
    return result


def _resolve_times(msg: dict[str, Any], envelope_sent_at: object, received_at: int) -> None:
    """The four timestamps of reference §3 (correction formula §3.1, missing fields §3.3)."""
    client_ts = timestamps.parse(msg.get("timestamp"))
    if client_ts is None:
        client_ts = timestamps.parse(msg.get("originalTimestamp"))
    sent_at = timestamps.parse(msg.get("sentAt"))
    if sent_at is None:
        sent_at = timestamps.parse(envelope_sent_at)
    msg["receivedAt"] = timestamps.format_us(received_at)
    msg.pop("originalTimestamp", None)
    if sent_at is None:
        msg.pop("sentAt", None)
    else:
        msg["sentAt"] = timestamps.format_us(sent_at)
    if client_ts is None:
        msg["timestamp"] = msg["receivedAt"]
        return
    msg["originalTimestamp"] = timestamps.format_us(client_ts)
    corrected = client_ts if sent_at is None else received_at - (sent_at - client_ts)
    if not timestamps.in_range(corrected):
        corrected = received_at
    msg["timestamp"] = timestamps.format_us(corrected)


def _channel(client: bool, context: Mapping[str, Any]) -> str:
    if not client:
        return "server"
    library = context.get("library")
    name = str(library.get("name", "")).lower() if isinstance(library, dict) else ""
    return "mobile" if any(tag in name for tag in _MOBILE_LIBRARIES) else "browser"


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})" if value else "an empty string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
