"""Unmodified Python SDKs (segment-analytics-python, rudder-sdk-python) against ``mainstem serve``.

Every event the SDK says it sent must be readable through ``GET /api/v1/events`` with the fields
the SDK put on the wire (reference §5.1) plus what the server adds (§2.10, §3).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import rudderstack.analytics as rudder_analytics
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient
from segment.analytics.version import VERSION as SEGMENT_VERSION

from tests.conftest import SERVER_KEY, WRITE_KEY, ServerProcess

pytestmark = pytest.mark.sdk

ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# Event times far from "now", one second apart, so each stored originalTimestamp is traceable to
# the call it came from and a wrong correction (reference §3.1) cannot pass by accident.
BASE_TIME = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)


def _at(second: int) -> datetime:
    return BASE_TIME + timedelta(seconds=second)


def _stored_at(second: int) -> str:
    """``_at(second)`` as the server writes it: UTC, milliseconds, ``Z`` (reference §2.10)."""
    return f"2024-05-01T10:00:{second:02d}.123Z"


def _parse(value: str) -> datetime:
    assert ISO_MS_Z.match(value), f"{value!r} is not ISO-8601 UTC with milliseconds and Z"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _by_message_id(stored: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {message["messageId"]: message for message in stored}
    assert len(found) == len(stored), "the same messageId was stored twice"
    return found


def _assert_server_fields(message: dict[str, Any], original: str) -> None:
    """What Mainstem adds to a server-SDK event: timestamps, channel, version (§2.10, §3)."""
    assert message["channel"] == "server"
    assert message["version"] == 2
    assert "writeKey" not in message
    assert "ip" not in message["context"], "server-channel events get no context.ip (§1.8)"
    assert message["originalTimestamp"] == original
    sent_at = _parse(message["sentAt"])
    received_at = _parse(message["receivedAt"])
    timestamp = _parse(message["timestamp"])
    # Same machine, same clock: the request left the SDK before the server received it, and the
    # corrected timestamp is the event time shifted by that (tiny) network delay (§3.1).
    assert sent_at <= received_at < sent_at + timedelta(seconds=10)
    shift = timestamp - _parse(message["originalTimestamp"])
    assert timedelta(0) <= shift < timedelta(seconds=10), (timestamp, message["originalTimestamp"])


@pytest.mark.parametrize(
    ("sync_mode", "gzip"),
    [(True, False), (True, True), (False, True)],
    ids=["sync", "sync-gzip", "batched-gzip"],
)
def test_analytics_python_delivers_all_six_calls(
    server: ServerProcess, sync_mode: bool, gzip: bool
) -> None:
    # In sync mode a failed upload raises out of the call itself; in batched mode the consumer
    # thread reports it through on_error instead.
    errors: list[tuple[Exception, list[Any]]] = []
    client = SegmentClient(
        WRITE_KEY,
        host=server.url,
        sync_mode=sync_mode,
        gzip=gzip,
        on_error=lambda exc, batch: errors.append((exc, batch)),
        max_retries=1,
        upload_interval=0.05,
        timeout=10,
    )
    user_id = 12345  # the SDK accepts numbers and stringifies them (reference §5.1)
    traits = {"email": "ada@example.com", "plan": "pro", "logins": 3, "vip": True}
    properties = {
        "revenue": Decimal("19.99"),  # the SDK sends Decimals as floats
        "currency": "EUR",
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}],
        "note": "café ☕",
        "coupon": None,
        "shipped_at": datetime(2024, 5, 2, 8, 30, tzinfo=UTC),
    }
    sent = [
        client.identify(user_id, traits, timestamp=_at(0)),
        client.track(user_id, "Order Completed", properties, timestamp=_at(1)),
        client.page(
            user_id, "Docs", "Install", {"url": "https://example.com/docs"}, timestamp=_at(2)
        ),
        client.screen(user_id, "Settings", "Profile", {"tab": "privacy"}, timestamp=_at(3)),
        client.group(user_id, 777, {"name": "Acme Inc", "employees": 42}, timestamp=_at(4)),
        client.alias("anon-7f3a", user_id, timestamp=_at(5)),
        client.track(anonymous_id="anon-7f3a", event="Cart Viewed", timestamp=_at(6)),
    ]
    if not sync_mode:
        client.shutdown()  # flush the queue and stop the consumer thread
    assert all(ok for ok, _ in sent), "the SDK refused to queue a message"
    assert errors == [], f"analytics-python reported delivery errors: {errors}"

    stored = server.events(expect=len(sent), source="web")
    assert len(stored) == len(sent)
    by_id = _by_message_id(stored)
    assert set(by_id) == {msg["messageId"] for _, msg in sent}
    assert [m["type"] for m in stored] == [
        "identify", "track", "page", "screen", "group", "alias", "track",
    ]  # fmt: skip

    for second, (_, wire) in enumerate(sent):
        message = by_id[wire["messageId"]]
        assert message["context"]["library"] == {
            "name": "analytics-python",
            "version": SEGMENT_VERSION,
        }
        assert message["integrations"] == {}
        # sent as "2024-05-01T10:00:0N.123+00:00", stored with Z
        assert wire["timestamp"] == _at(second).isoformat(timespec="milliseconds")
        _assert_server_fields(message, _stored_at(second))

    identify, track, page, screen, group, alias, anonymous = (
        by_id[m["messageId"]] for _, m in sent
    )
    assert identify["userId"] == "12345"
    assert identify["traits"] == traits
    assert track["userId"] == "12345"
    assert track["event"] == "Order Completed"
    assert track["properties"] == {
        "revenue": 19.99,
        "currency": "EUR",
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}],
        "note": "café ☕",
        "coupon": None,
        "shipped_at": "2024-05-02T08:30:00+00:00",
    }
    assert page["userId"] == "12345"
    assert (page["category"], page["name"]) == ("Docs", "Install")
    # python sends the page category only top-level; the server mirrors it (reference §2.2)
    assert page["properties"] == {"url": "https://example.com/docs", "category": "Docs"}
    assert (screen["category"], screen["name"]) == ("Settings", "Profile")
    assert screen["properties"] == {"tab": "privacy"}
    assert group["userId"] == "12345"
    assert group["groupId"] == "777"  # sent as the number 777: coerced to a string (§2.1)
    assert group["traits"] == {"name": "Acme Inc", "employees": 42}
    assert (alias["userId"], alias["previousId"]) == ("12345", "anon-7f3a")
    # python sends `"userId": null` for an anonymous call: null is absent (reference §2.1)
    assert anonymous["anonymousId"] == "anon-7f3a"
    assert "userId" not in anonymous
    assert anonymous["event"] == "Cart Viewed"
    assert anonymous["properties"] == {}
    for message in (identify, track, page, screen, group, alias):
        assert "anonymousId" not in message

    # All stored under the web source, none under another one.
    assert server.events(source="backend") == []


def test_rudder_sdk_python_delivers_all_six_calls(server: ServerProcess) -> None:
    # rudder-sdk-python posts gzip (its default) to {dataPlaneUrl}/v1/batch with HTTP Basic auth
    # and no writeKey in the body.
    client = RudderClient(SERVER_KEY, host=server.url, sync_mode=True, timeout=10)
    assert client.gzip is True
    uid = "user-99"
    sent = [
        client.identify(uid, {"email": "grace@example.com", "role": "admin"}, timestamp=_at(0)),
        client.track(uid, "Report Exported", {"format": "csv", "rows": 1200}, timestamp=_at(1)),
        client.page(uid, "Reports", "Monthly", {"path": "/reports/monthly"}, timestamp=_at(2)),
        client.screen(uid, "Home", "Dashboard", {"widgets": 4}, timestamp=_at(3)),
        client.group(uid, "org-55", {"name": "Initech", "plan": "enterprise"}, timestamp=_at(4)),
        client.alias("device-abc", uid, timestamp=_at(5)),
    ]
    assert all(ok for ok, _ in sent)

    stored = server.events(expect=len(sent), source="backend")
    assert len(stored) == len(sent)
    by_id = _by_message_id(stored)
    assert set(by_id) == {msg["messageId"] for _, msg in sent}
    assert [m["type"] for m in stored] == ["identify", "track", "page", "screen", "group", "alias"]

    for second, (_, wire) in enumerate(sent):
        message = by_id[wire["messageId"]]
        assert message["userId"] == uid
        assert "anonymousId" not in message  # sent as null
        assert message["context"]["library"] == {
            "name": "analytics-python",  # rudder keeps the name of the SDK it forked
            "version": rudder_analytics.VERSION,
        }
        assert message["integrations"] == {"All": True}
        # rudder sends microseconds and +00:00; stored with milliseconds and Z
        assert wire["timestamp"] == _at(second).isoformat()
        _assert_server_fields(message, _stored_at(second))

    identify, track, page, screen, group, alias = (by_id[m["messageId"]] for _, m in sent)
    # rudder puts identify traits in context.traits, not at the top level
    assert identify["context"]["traits"] == {"email": "grace@example.com", "role": "admin"}
    assert "traits" not in identify
    assert track["event"] == "Report Exported"
    assert track["properties"] == {"format": "csv", "rows": 1200}
    assert (page["category"], page["name"]) == ("Reports", "Monthly")
    assert page["properties"] == {"path": "/reports/monthly", "category": "Reports"}
    assert (screen["category"], screen["name"]) == ("Home", "Dashboard")
    assert screen["properties"] == {"widgets": 4}
    assert group["groupId"] == "org-55"
    assert group["traits"] == {"name": "Initech", "plan": "enterprise"}
    assert alias["previousId"] == "device-abc"

    assert server.events(source="web") == []
