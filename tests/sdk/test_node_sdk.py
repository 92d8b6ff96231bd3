"""The unmodified @segment/analytics-node 3.1.0 SDK against ``mainstem serve``.

``tests/js/send_node.mjs`` drives the SDK (installed by ``npm ci`` in ``tests/js``, which
``make test`` runs); this test checks what it sent against what the admin API returns
(reference §5.2).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WRITE_KEY, ServerProcess

pytestmark = pytest.mark.sdk

JS = Path(__file__).resolve().parent.parent / "js"
SDK_PACKAGE = JS / "node_modules" / "@segment" / "analytics-node" / "package.json"
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MESSAGE_ID = re.compile(r"^node-next-\d{13}-[0-9a-f-]{36}$")


def _node() -> str:
    node = shutil.which("node")
    assert node is not None, "node is not on PATH — install Node.js (CI: `make test` needs it)"
    assert SDK_PACKAGE.exists(), (
        f"{SDK_PACKAGE} is missing — run `make node` (npm ci in tests/js) first"
    )
    return node


def _send(server: ServerProcess, calls: list[dict[str, Any]], flush_at: int) -> dict[str, Any]:
    """Run the SDK in a node process; return its report of what it built and sent."""
    done = subprocess.run(
        [_node(), str(JS / "send_node.mjs"), server.url, WRITE_KEY, str(flush_at)],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        cwd=JS,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, (
        f"send_node.mjs exited {done.returncode}\nstderr:\n{done.stderr}\nstdout:\n{done.stdout}"
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _parse(value: str) -> datetime:
    assert ISO_MS_Z.match(value), f"{value!r} is not ISO-8601 UTC with milliseconds and Z"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_analytics_node_delivers_all_six_calls(server: ServerProcess) -> None:
    calls: list[dict[str, Any]] = [
        {
            "method": "identify",
            "params": {
                "userId": "user-node-1",
                "traits": {"email": "linus@example.com", "name": "Linus", "age": 31},
                "timestamp": "2024-05-01T10:00:00.123Z",
            },
        },
        {
            "method": "track",
            "params": {
                "userId": "user-node-1",
                "event": "Order Completed",
                "properties": {"revenue": 42.5, "products": [{"id": "p1"}], "gift": False},
                "timestamp": "2024-05-01T10:00:01.456Z",
            },
        },
        {
            "method": "page",
            "params": {
                "anonymousId": "anon-node-1",
                "category": "Docs",
                "name": "Quickstart",
                "properties": {"path": "/docs/quickstart"},
            },
        },
        {
            "method": "screen",
            "params": {
                "userId": "user-node-1",
                "name": "Checkout",
                "properties": {"step": 2},
                "context": {"app": {"name": "Shop", "version": "1.2.3"}},
            },
        },
        {
            "method": "group",
            "params": {
                "userId": "user-node-1",
                "groupId": "org-node-9",
                "traits": {"name": "Globex", "industry": "Energy"},
            },
        },
        {
            "method": "alias",
            "params": {"userId": "user-node-1", "previousId": "anon-node-1"},
        },
    ]
    # flushAt 4: one batch of four and one of two, both POST /v1/batch with Basic auth
    report = _send(server, calls, flush_at=4)

    requests = report["requests"]
    assert [len(r["body"]["batch"]) for r in requests] == [4, 2]
    basic = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    for request in requests:
        assert request["url"] == f"{server.url}/v1/batch"
        assert request["headers"]["Authorization"] == f"Basic {basic}"  # node >= 3.1 (§1.3)
        assert request["body"]["writeKey"] == WRITE_KEY
    assert [r["status"] for r in report["responses"]] == [200, 200]

    delivered = report["delivered"]
    assert [e["type"] for e in delivered] == [c["method"] for c in calls]
    stored = server.events(expect=len(calls), source="web")
    assert len(stored) == len(calls)
    by_id = {m["messageId"]: m for m in stored}
    assert set(by_id) == {e["messageId"] for e in delivered}
    assert [m["type"] for m in stored] == [c["method"] for c in calls]

    sent_at = {e["messageId"]: r["body"]["sentAt"] for r in requests for e in r["body"]["batch"]}
    for wire in delivered:
        message = by_id[wire["messageId"]]
        assert MESSAGE_ID.match(message["messageId"]), message["messageId"]
        assert message["context"]["library"] == {
            "name": "@segment/analytics-node",
            "version": "3.1.0",
        }
        assert message["channel"] == "server"
        assert message["version"] == 2
        assert message["integrations"] == {}
        assert "writeKey" not in message
        assert "ip" not in message["context"]
        # the SDK's own timestamp becomes originalTimestamp; sentAt is the batch envelope's
        assert message["originalTimestamp"] == wire["timestamp"]
        assert message["sentAt"] == sent_at[wire["messageId"]]
        sent, received = _parse(message["sentAt"]), _parse(message["receivedAt"])
        assert sent <= received < sent + timedelta(seconds=10)
        shift = _parse(message["timestamp"]) - _parse(message["originalTimestamp"])
        assert timedelta(0) <= shift < timedelta(seconds=10)

    identify, track, page, screen, group, alias = (by_id[e["messageId"]] for e in delivered)
    assert identify["userId"] == "user-node-1"
    assert identify["traits"] == {"email": "linus@example.com", "name": "Linus", "age": 31}
    assert identify["originalTimestamp"] == "2024-05-01T10:00:00.123Z"
    assert track["event"] == "Order Completed"
    assert track["properties"] == {"revenue": 42.5, "products": [{"id": "p1"}], "gift": False}
    assert track["originalTimestamp"] == "2024-05-01T10:00:01.456Z"
    assert page["anonymousId"] == "anon-node-1"
    assert "userId" not in page
    assert (page["category"], page["name"]) == ("Docs", "Quickstart")
    assert page["properties"] == {"path": "/docs/quickstart", "category": "Docs"}
    assert screen["name"] == "Checkout"
    assert screen["properties"] == {"step": 2}
    assert screen["context"]["app"] == {"name": "Shop", "version": "1.2.3"}
    assert group["groupId"] == "org-node-9"
    assert group["traits"] == {"name": "Globex", "industry": "Energy"}
    assert (alias["userId"], alias["previousId"]) == ("user-node-1", "anon-node-1")

    # Events the SDK stamped "now" are now-ish on the server clock too.
    now = datetime.now(UTC)
    for message in (page, screen, group, alias):
        assert now - timedelta(minutes=1) < _parse(message["originalTimestamp"]) <= now
