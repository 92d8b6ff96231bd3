"""Normalization of one message: discard codes (reference §1.7), timestamps (§3), envelope
merging (§1.5), field rules (§2)."""

from __future__ import annotations

from typing import Any

import pytest

from mainstem import timestamps
from mainstem.message import Rejection, Request, normalize

RECEIVED = timestamps.parse("2024-05-01T10:00:10.000Z")
assert RECEIVED is not None
SERVER = Request(received_at=RECEIVED)


def ok(raw: object, request: Request = SERVER, **kwargs: Any) -> dict[str, Any]:
    result = normalize(raw, request, seed="0:1:0", **kwargs)
    assert not isinstance(result, Rejection), result
    return result


def rejected(raw: object, **kwargs: Any) -> Rejection:
    result = normalize(raw, SERVER, seed="0:1:0", **kwargs)
    assert isinstance(result, Rejection), result
    return result


@pytest.mark.parametrize(
    ("raw", "code", "reason"),
    [
        ({"type": "track", "event": "A"}, "no_user_anon_id", "track needs userId or anonymousId"),
        (
            {"type": "identify", "userId": None, "anonymousId": None},
            "no_user_anon_id",
            "identify needs userId or anonymousId",
        ),
        ({"type": "page", "userId": ""}, "no_user_anon_id", "page needs userId or anonymousId"),
        (
            {"type": "alias", "previousId": "a"},
            "id_required",
            "alias needs userId (the new id); previousId is the old one",
        ),
        ({"type": "track", "userId": "u"}, "event_not_defined", "track needs an event name"),
        (
            {"type": "track", "userId": "u", "event": ""},
            "event_not_defined",
            "track needs an event name",
        ),
        (
            {"type": "track", "userId": "u", "event": 5},
            "event_not_string",
            "event must be a string, got a number (5)",
        ),
        (
            {"type": "track", "userId": "u", "event": "A", "properties": [1]},
            "properties_not_object",
            "properties must be an object, got an array",
        ),
        (
            {"type": "page", "userId": "u", "properties": "x"},
            "properties_not_object",
            "properties must be an object, got a string ('x')",
        ),
        (
            {"type": "identify", "userId": "u", "traits": "x"},
            "traits_not_object",
            "traits must be an object, got a string ('x')",
        ),
        (
            {"type": "group", "userId": "u", "groupId": "g", "traits": 1},
            "traits_not_object",
            "traits must be an object, got a number (1)",
        ),
        (
            {"type": "page", "userId": "u", "name": ""},
            "name_not_string",
            "name must be a non-empty string, got an empty string",
        ),
        (
            {"type": "screen", "userId": "u", "name": 3},
            "name_not_string",
            "name must be a non-empty string, got a number (3)",
        ),
        (
            {"type": "page", "userId": "u", "category": {}},
            "category_not_string",
            "category must be a non-empty string, got an object",
        ),
        ({"type": "group", "userId": "u"}, "group_id_not_defined", "group needs groupId"),
        (
            {"userId": "u"},
            "type_not_defined",
            "type is missing — it must be one of identify, track, page, screen, group, alias",
        ),
        (
            {"type": "tarck", "userId": "u"},
            "type_invalid",
            "type 'tarck' is not one of identify, track, page, screen, group, alias",
        ),
        ([1], "message_not_object", "each message must be a JSON object, got an array"),
        (
            {"type": "identify", "userId": True},
            "id_not_string",
            "userId: expected a string, got a boolean",
        ),
        (
            {"type": "identify", "userId": {"a": 1}},
            "id_not_string",
            "userId: expected a string, got an object",
        ),
        (
            {"type": "identify", "userId": "u", "messageId": "m" * 101},
            "message_id_too_long",
            "messageId is 101 characters; the limit is 100",
        ),
        (
            {"type": "identify", "userId": "u", "messageId": []},
            "message_id_not_string",
            "messageId must be a non-empty string, got an array",
        ),
        (
            {"type": "identify", "userId": "u", "context": []},
            "context_not_object",
            "context must be an object, got an array",
        ),
        (
            {"type": "identify", "userId": "u", "integrations": "x"},
            "integrations_not_object",
            "integrations must be an object, got a string ('x')",
        ),
    ],
)
def test_discard_codes(raw: object, code: str, reason: str) -> None:
    assert rejected(raw) == Rejection(code, reason)


def test_path_type_wins_over_body_type() -> None:
    msg = ok({"type": "identify", "userId": "u", "event": "E"}, path_type="track")
    assert msg["type"] == "track"


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("identify", {"traits": {"email": "a@b.c"}}),
        ("track", {"event": "Order Completed", "properties": {"revenue": 9.5}}),
        ("page", {"name": "Home"}),
        ("screen", {"name": "Main", "category": "App"}),
        ("group", {"groupId": "g1", "traits": {"plan": "pro"}}),
        ("alias", {"previousId": "anon-1"}),
    ],
)
def test_every_type_is_accepted(kind: str, fields: dict[str, Any]) -> None:
    msg = ok({"type": kind, "userId": "u1", **fields})
    assert msg["type"] == kind
    for key, value in fields.items():
        assert msg[key] == value


def test_server_fields() -> None:
    msg = ok({"type": "track", "userId": "u", "event": "E", "writeKey": "k", "options": {}})
    assert msg["receivedAt"] == "2024-05-01T10:00:10.000Z"
    assert msg["timestamp"] == msg["receivedAt"]
    assert "originalTimestamp" not in msg and "sentAt" not in msg
    assert msg["version"] == 2
    assert msg["channel"] == "server"
    assert msg["context"] == {"library": {"name": "unknown", "version": "unknown"}}
    assert msg["integrations"] == {}
    assert "writeKey" not in msg and "options" not in msg
    assert msg["messageId"].startswith("api-") and len(msg["messageId"]) == 31


def test_assigned_message_id_is_deterministic_per_log_position() -> None:
    raw = {"type": "track", "userId": "u", "event": "E"}
    first = normalize(dict(raw), SERVER, seed="0:1:0")
    again = normalize(dict(raw), SERVER, seed="0:1:0")
    other = normalize(dict(raw), SERVER, seed="0:1:1")
    assert isinstance(first, dict) and isinstance(again, dict) and isinstance(other, dict)
    assert first["messageId"] == again["messageId"] != other["messageId"]


def test_ids_are_stringified_and_nulls_are_absent() -> None:
    msg = ok(
        {
            "type": "group",
            "userId": 42,
            "anonymousId": None,
            "groupId": 7.0,
            "messageId": 123,
            "name": None,
        }
    )
    assert msg["userId"] == "42"
    assert msg["groupId"] == "7"
    assert msg["messageId"] == "123"
    assert "anonymousId" not in msg and "name" not in msg


# Reference §3.3, and the worked example of §3.2.
@pytest.mark.parametrize(
    ("timestamp", "sent_at", "envelope_sent_at", "expected"),
    [
        # timestamp and sentAt: corrected by the device clock's offset
        (
            "2024-05-01T10:00:00.000Z",
            "2024-05-01T10:00:05.000Z",
            None,
            {
                "timestamp": "2024-05-01T10:00:05.000Z",
                "originalTimestamp": "2024-05-01T10:00:00.000Z",
                "sentAt": "2024-05-01T10:00:05.000Z",
            },
        ),
        # sentAt from the batch envelope
        (
            "2024-05-01T10:00:00.000Z",
            None,
            "2024-05-01T10:00:08.000Z",
            {
                "timestamp": "2024-05-01T10:00:02.000Z",
                "originalTimestamp": "2024-05-01T10:00:00.000Z",
                "sentAt": "2024-05-01T10:00:08.000Z",
            },
        ),
        # the message's own sentAt wins over the envelope's
        (
            "2024-05-01T10:00:00.000Z",
            "2024-05-01T10:00:01.000Z",
            "2024-05-01T10:00:08.000Z",
            {
                "timestamp": "2024-05-01T10:00:09.000Z",
                "originalTimestamp": "2024-05-01T10:00:00.000Z",
                "sentAt": "2024-05-01T10:00:01.000Z",
            },
        ),
        # timestamp without sentAt: kept (normalized), no correction
        (
            "2024-05-01T12:00:00+02:00",
            None,
            None,
            {
                "timestamp": "2024-05-01T10:00:00.000Z",
                "originalTimestamp": "2024-05-01T10:00:00.000Z",
            },
        ),
        # no timestamp: receivedAt, and no originalTimestamp
        (
            None,
            "2024-05-01T10:00:05.000Z",
            None,
            {"timestamp": "2024-05-01T10:00:10.000Z", "sentAt": "2024-05-01T10:00:05.000Z"},
        ),
        (None, None, None, {"timestamp": "2024-05-01T10:00:10.000Z"}),
        # an unparseable timestamp is treated as absent
        ("not a time", None, None, {"timestamp": "2024-05-01T10:00:10.000Z"}),
        # a historical import through a server SDK with an accurate clock
        (
            "2019-01-01T00:00:00.000Z",
            "2024-05-01T10:00:09.900Z",
            None,
            {
                "timestamp": "2019-01-01T00:00:00.100Z",
                "originalTimestamp": "2019-01-01T00:00:00.000Z",
                "sentAt": "2024-05-01T10:00:09.900Z",
            },
        ),
    ],
)
def test_timestamps(
    timestamp: str | None,
    sent_at: str | None,
    envelope_sent_at: str | None,
    expected: dict[str, str],
) -> None:
    raw: dict[str, Any] = {"type": "track", "userId": "u", "event": "E"}
    if timestamp is not None:
        raw["timestamp"] = timestamp
    if sent_at is not None:
        raw["sentAt"] = sent_at
    msg = ok(raw, envelope={"sentAt": envelope_sent_at})
    got = {key: msg[key] for key in ("timestamp", "originalTimestamp", "sentAt") if key in msg}
    assert got == expected
    assert msg["receivedAt"] == "2024-05-01T10:00:10.000Z"


def test_worked_example_from_the_reference() -> None:
    received = timestamps.parse("2024-05-01T06:33:36.745Z")
    assert received is not None
    msg = ok(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "timestamp": "2024-05-01T06:33:31.593Z",
            "sentAt": "2024-05-01T06:33:32.900Z",
        },
        Request(received_at=received),
    )
    assert msg["timestamp"] == "2024-05-01T06:33:35.438Z"


def test_envelope_context_and_integrations_are_deep_merged_element_wins() -> None:
    envelope = {
        "context": {"device": {"type": "phone", "model": "X"}, "locale": "en-US"},
        "integrations": {"All": False, "Mixpanel": True},
    }
    msg = ok(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "context": {"device": {"model": "Y"}, "library": {"name": "lib", "version": "1"}},
            "integrations": {"Mixpanel": False},
        },
        envelope=envelope,
    )
    assert msg["context"] == {
        "device": {"type": "phone", "model": "Y"},
        "locale": "en-US",
        "library": {"name": "lib", "version": "1"},
    }
    assert msg["integrations"] == {"All": False, "Mixpanel": False}
    assert envelope["context"] == {"device": {"type": "phone", "model": "X"}, "locale": "en-US"}


def test_deep_envelope_merge_does_not_recurse() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    twin: dict[str, Any] = {}
    node = twin
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    msg = ok(
        {"type": "track", "userId": "u", "event": "E", "context": twin}, envelope={"context": deep}
    )
    assert "x" in msg["context"]


@pytest.mark.parametrize(
    ("client", "context", "ip", "channel"),
    [
        (
            True,
            {"library": {"name": "analytics.js", "version": "next-1.84.3"}},
            "198.51.100.4",
            "browser",
        ),
        (
            True,
            {"library": {"name": "analytics-kotlin", "version": "1.0"}},
            "198.51.100.4",
            "mobile",
        ),
        (True, {"ip": "192.0.2.1"}, "192.0.2.1", "browser"),  # the client's own ip wins
        (False, {}, None, "server"),  # server SDKs do not get the server's address
        (False, {"direct": True}, "198.51.100.4", "server"),  # unless they ask (§1.8)
    ],
)
def test_ip_and_channel(
    client: bool, context: dict[str, Any], ip: str | None, channel: str
) -> None:
    request = Request(received_at=RECEIVED, client=client, ip="198.51.100.4")
    msg = ok({"type": "page", "anonymousId": "a", "context": context}, request)
    assert msg["context"].get("ip") == ip
    assert msg["channel"] == channel


def test_page_category_is_mirrored_into_properties() -> None:
    msg = ok({"type": "page", "userId": "u", "category": "Docs", "name": "Intro"})
    assert msg["properties"] == {"category": "Docs"}
    kept = ok(
        {"type": "page", "userId": "u", "category": "Docs", "properties": {"category": "Own"}}
    )
    assert kept["properties"] == {"category": "Own"}


def test_input_is_not_mutated() -> None:
    raw = {"type": "track", "userId": "u", "event": "E", "context": {"a": 1}}
    ok(raw)
    assert raw == {"type": "track", "userId": "u", "event": "E", "context": {"a": 1}}
