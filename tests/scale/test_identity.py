"""Identity resolution on PostgreSQL: the resolver runs as a singleton task on one worker, the
profiles live in the shared database, and every gateway's Profile API (and the CLI, from any
machine that reaches the database) answers from them."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from typer.testing import CliRunner

from mainstem.cli import app
from tests.conftest import ADMIN_TOKEN, WRITE_KEY
from tests.identity.helpers import message
from tests.scale.conftest import Cluster
from tests.scale.harness import Node

pytestmark = pytest.mark.slow


def _profile(node: Node, ref: str, part: str, timeout: float = 60.0) -> httpx.Response:
    """``GET …/profiles/{ref}/{part}`` on ``node`` once it answers 200 (404 until resolved)."""
    url = f"{node.http}/v1/spaces/main/collections/users/profiles/{ref}/{part}"
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, auth=(ADMIN_TOKEN, ""), timeout=10)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_profiles_resolve_on_a_worker_and_answer_from_every_gateway(cluster: Cluster) -> None:
    gateways = [cluster("gateway"), cluster("gateway")]
    worker = cluster("worker")
    # the anonymous visit reaches one gateway, the sign-up the other
    first = [message("page", 1, 0, anonymousId="a1")]
    second = [
        message("identify", 2, 1, anonymousId="a1", userId="u1", traits={"plan": "pro"}),
        message("track", 3, 2, event="Clicked", userId="u1", anonymousId="a2"),
    ]
    for gateway, batch in zip(gateways, (first, second), strict=True):
        sent = httpx.post(f"{gateway.http}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
        assert sent.status_code == 200, sent.text
    for gateway in gateways:
        # the second device's id arrives last: once it answers, every event is resolved
        response = _profile(gateway, "anonymous_id:a2", "external_ids")
        assert response.status_code == 200, worker.log_path.read_text()
        ids = sorted((d["type"], d["id"]) for d in response.json()["data"])
        assert ids == [("anonymous_id", "a1"), ("anonymous_id", "a2"), ("user_id", "u1")]
        traits = _profile(gateway, "user_id:u1", "traits")
        assert traits.json()["traits"] == {"plan": "pro"}
    # the CLI reads the same profiles from the database
    result = CliRunner().invoke(
        app,
        ["profile", "show", "anonymous_id:a1", "--config", str(worker.config)],
        env={"MAINSTEM_DATABASE_URL": worker.url},
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["traits"] == {"plan": "pro"}
    assert sorted(i["id"] for i in shown["external_ids"]) == ["a1", "a2", "u1"]
    # the worker's data directory holds no profiles.db: PostgreSQL is the store
    assert not (worker.data_dir / "profiles.db").exists()


def test_the_resolver_moves_to_another_worker_and_resumes_exactly(cluster: Cluster) -> None:
    gateway = cluster("gateway")
    first = cluster("worker")
    batch = [message("identify", 1, 0, userId="u1", anonymousId="a1", traits={"n": 1})]
    sent = httpx.post(f"{gateway.http}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert sent.status_code == 200, sent.text
    assert _profile(gateway, "user_id:u1", "traits").json()["traits"] == {"n": 1}
    second = cluster("worker")
    first.kill()  # its identity task (and partitions) move to the second worker
    batch = [message("identify", 2, 1, userId="u1", anonymousId="a9", traits={"n": 2})]
    sent = httpx.post(f"{gateway.http}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert sent.status_code == 200, sent.text
    response = _profile(gateway, "anonymous_id:a9", "traits")
    assert response.status_code == 200, second.log_path.read_text()
    assert response.json()["traits"] == {"n": 2}
    # one profile, each event on it once
    events = _profile(gateway, "user_id:u1", "events").json()["data"]
    assert sorted(e["message_id"] for e in events) == ["m1", "m2"]
    ids = _profile(gateway, "user_id:u1", "external_ids").json()["data"]
    assert sorted((d["type"], d["id"]) for d in ids) == [
        ("anonymous_id", "a1"),
        ("anonymous_id", "a9"),
        ("user_id", "u1"),
    ]
