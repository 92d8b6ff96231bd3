"""``mainstem serve --database-url postgresql://…``: the real server on the real PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import WRITE_KEY
from tests.scale.conftest import Cluster
from tests.scale.harness import caught_up

pytestmark = pytest.mark.slow


def test_serve_on_postgresql_stores_events_readable_over_the_api(cluster: Cluster) -> None:
    node = cluster("all")
    response = httpx.post(
        f"{node.http}/v1/batch",
        json={
            "writeKey": WRITE_KEY,
            "batch": [
                {"type": "track", "event": "Signed Up", "userId": "u1", "messageId": "pg-1"},
                {"type": "identify", "userId": "u1", "messageId": "pg-2"},
            ],
        },
    )
    assert response.status_code == 200, response.text
    stored = caught_up(node, timeout=30)
    assert [(m["messageId"], m["type"]) for m in stored] == [
        ("pg-1", "track"),
        ("pg-2", "identify"),
    ]
    assert node.health()["status"] == "ok"


def test_gateways_and_workers_in_separate_processes(cluster: Cluster) -> None:
    gateways = [cluster("gateway"), cluster("gateway")]
    worker = cluster("worker")
    for index, gateway in enumerate(gateways):
        response = httpx.post(
            f"{gateway.http}/v1/track",
            json={"writeKey": WRITE_KEY, "event": "E", "userId": "u", "messageId": f"m{index}"},
        )
        assert response.status_code == 200, response.text
    stored = caught_up(worker, timeout=30)
    assert sorted(m["messageId"] for m in stored) == ["m0", "m1"]
    # a worker does not take Tracking API requests
    assert httpx.post(f"{worker.http}/v1/track", json={}).status_code == 503
