"""``mainstem serve --database-url postgresql://…``: the real server on the real PostgreSQL."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from mainstem.cli import app
from tests.conftest import ADMIN_TOKEN, WRITE_KEY, wait_for
from tests.destinations.conftest import Receiver
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


def test_gateways_and_workers_in_separate_processes(cluster: Cluster, sink: Receiver) -> None:
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
    # the worker delivers to the destination; any gateway's admin API shows it
    wait_for(lambda: len(sink.messages()) == 2, 30, "both events to reach the destination")
    assert sorted(m["messageId"] for m in sink.messages()) == ["m0", "m1"]
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    overview = httpx.get(f"{gateways[1].http}/api/v1/destinations", headers=headers).json()
    [row] = overview["data"]
    assert (row["id"], row["delivered"], row["lag"], row["dead_letters"]) == ("sink", 2, 0, 0)
    deliveries = httpx.get(
        f"{gateways[0].http}/api/v1/destinations/sink/deliveries", headers=headers
    ).json()["data"]
    assert {d["outcome"] for d in deliveries} == {"delivered"}
    assert sum(d["events"] for d in deliveries) == 2
    # and so does the CLI, from any machine that can reach the database
    result = CliRunner().invoke(
        app,
        ["destinations", "--config", str(worker.config), "--json"],
        env={"MAINSTEM_DATABASE_URL": worker.url},
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["id"], row["delivered"], row["lag"]) == ("sink", 2, 0)
    # the worker holding the warehouse task loaded both events (DuckDB in its data dir)
    query = ["query", "--config", str(worker.config), "--data-dir", str(worker.data_dir), "--json"]

    def loaded() -> list[str]:
        sql = "SELECT id FROM web.tracks ORDER BY id"
        answer = CliRunner().invoke(app, [*query, sql])
        if answer.exit_code != 0:  # not loaded yet: no such table
            return [answer.output]
        return [json.loads(line)["id"] for line in answer.output.splitlines()]

    wait_for(lambda: loaded() == ["m0", "m1"], 30, "the warehouse to load both events")
    # a worker does not take Tracking API requests
    assert httpx.post(f"{worker.http}/v1/track", json={}).status_code == 503
