"""End to end: `mainstem serve` delivers to a webhook, chains to a second Mainstem, and delivers
to vendor integrations configured in mainstem.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, WORKSPACE, WRITE_KEY, ServerProcess
from tests.destinations import test_amplitude, test_mixpanel
from tests.destinations.conftest import Receiver, Serve, wait_for
from tests.destinations.vendors import Start, Vendor


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        if proc.process is not None and proc.process.poll() is None:
            proc.stop()


def test_serve_delivers_to_a_webhook_and_chains_to_another_mainstem(
    serve: Serve, tmp_path: Path, servers: list[ServerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = serve(Receiver("webhook", secret="from-the-env"))
    monkeypatch.setenv("HOOK_SECRET", "from-the-env")
    downstream_dir = tmp_path / "down"
    downstream_dir.mkdir()
    downstream_file = downstream_dir / "mainstem.yaml"
    downstream_file.write_text(WORKSPACE.format(data_dir=downstream_dir / "data"))
    downstream = ServerProcess(downstream_file, downstream_dir / "data", tmp_path / "down.log")
    downstream.start()
    servers.append(downstream)

    destinations = f"""destinations:
  - id: hooks
    type: webhook
    types: [track]
    settings: {{url: "{hook.url}/in", secret: "${{HOOK_SECRET}}"}}
  - id: chain
    type: segment
    batch: {{size: 50, interval: 0.2s}}
    settings: {{url: "{downstream.url}", write_key: {WRITE_KEY}}}
"""
    upstream_file = tmp_path / "mainstem.yaml"
    upstream_file.write_text(
        WORKSPACE.format(data_dir=tmp_path / "data").replace("destinations: []\n", destinations)
    )
    upstream = ServerProcess(upstream_file, tmp_path / "data", tmp_path / "up.log")
    upstream.start()
    servers.append(upstream)

    batch = [
        {"type": "track", "event": "Signed Up", "userId": "u1", "messageId": "m1"},
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m2"},
        {"type": "track", "event": "Upgraded", "userId": "u1", "messageId": "m3"},
    ]
    reply = httpx.post(f"{upstream.url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert reply.status_code == 200

    wait_for(lambda: len(hook.messages()) == 2, "the webhook")
    assert [m["messageId"] for m in hook.messages()] == ["m1", "m3"]
    assert hook.refused == []
    chained = downstream.events(expect=3)
    assert [m["messageId"] for m in chained] == ["m1", "m2", "m3"]
    assert chained[1]["traits"] == {"plan": "pro"}


def test_serve_delivers_to_vendor_integrations_configured_in_mainstem_yaml(
    vendor_server: Start,
    tmp_path: Path,
    servers: list[ServerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mixpanel = vendor_server(Vendor(test_mixpanel.mixpanel))
    amplitude = vendor_server(Vendor(test_amplitude.amplitude))
    monkeypatch.setenv("MP_TOKEN", test_mixpanel.TOKEN)
    monkeypatch.setenv("AMP_KEY", test_amplitude.KEY)
    destinations = f"""destinations:
  - id: mixpanel
    type: mixpanel
    batch: {{size: 10, interval: 0.2s}}
    settings: {{token: "${{MP_TOKEN}}", endpoint: "{mixpanel.url}"}}
  - id: amplitude
    type: amplitude
    batch: {{size: 10, interval: 0.2s}}
    settings: {{api_key: "${{AMP_KEY}}", endpoint: "{amplitude.url}"}}
"""
    config = tmp_path / "mainstem.yaml"
    config.write_text(
        WORKSPACE.format(data_dir=tmp_path / "data").replace("destinations: []\n", destinations)
    )
    server = ServerProcess(config, tmp_path / "data", tmp_path / "serve.log")
    server.start()
    servers.append(server)
    batch = [
        {"type": "track", "event": "Signed Up", "userId": "user-1", "messageId": "m1"},
        {"type": "identify", "userId": "user-1", "traits": {"plan": "pro"}, "messageId": "m2"},
    ]
    reply = httpx.post(f"{server.url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert reply.status_code == 200

    wait_for(lambda: len(mixpanel.accepted) == 2 and len(amplitude.accepted) == 1, "vendors")
    assert (mixpanel.refused, amplitude.refused) == ([], [])
    (imported,) = mixpanel.bodies("/import")
    (profiles,) = mixpanel.bodies("/engage")
    assert [e["properties"]["$insert_id"] for e in imported] == ["m1"]
    assert profiles[0]["$set"] == {"plan": "pro"}
    (body,) = amplitude.bodies()
    assert [(e["event_type"], e["insert_id"]) for e in body["events"]] == [
        ("Signed Up", "m1"),
        ("$identify", "m2"),
    ]


def test_a_destination_added_to_mainstem_yaml_starts_without_a_restart(
    serve: Serve, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    hook = serve(Receiver("webhook"))
    config = tmp_path / "mainstem.yaml"
    config.write_text(WORKSPACE.format(data_dir=tmp_path / "data"))
    server = ServerProcess(config, tmp_path / "data", tmp_path / "serve.log")
    server.start()
    servers.append(server)

    def track(message_id: str) -> None:
        body = {"type": "track", "event": "E", "userId": "u1", "messageId": message_id}
        assert httpx.post(f"{server.url}/v1/track", json=body, auth=(WRITE_KEY, "")).is_success

    track("before")
    server.events(expect=1)
    destination = (
        f'destinations:\n  - id: hooks\n    type: webhook\n    settings: {{url: "{hook.url}/in"}}\n'
    )
    config.write_text(
        WORKSPACE.format(data_dir=tmp_path / "data").replace("destinations: []\n", destination)
    )
    wait_for(
        lambda: "restarting the processor" in server.log_path.read_text(),
        "the server to see the new destination",
    )

    def begun() -> bool:
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        rows = httpx.get(f"{server.url}/api/v1/destinations", headers=auth).json()["data"]
        return [row["id"] for row in rows] == ["hooks"] and rows[0]["updated_at"] is not None

    wait_for(begun, "the new processor to start the destination")
    track("after")
    # a new destination starts after the newest stored event, as in Segment
    wait_for(lambda: [m["messageId"] for m in hook.messages()] == ["after"], "the new webhook")
    assert server.events(expect=2)[-1]["messageId"] == "after"


def test_only_the_processors_part_of_the_workspace_restarts_it(tmp_path: Path) -> None:
    from mainstem import config
    from mainstem.worker import ProcessorProcess

    file = tmp_path / "mainstem.yaml"
    file.write_text(WORKSPACE.format(data_dir=tmp_path / "data"))
    running = ProcessorProcess(tmp_path, config.load(file))  # never started
    assert running.serves(config.load(file))
    file.write_text(
        WORKSPACE.format(data_dir=tmp_path / "data").replace("name: Website", "name: Web")
    )
    assert running.serves(config.load(file))  # a source's name: the gateway's business
    hook = 'destinations:\n  - id: hooks\n    type: webhook\n    settings: {url: "http://x/in"}\n'
    file.write_text(
        WORKSPACE.format(data_dir=tmp_path / "data").replace("destinations: []\n", hook)
    )
    assert not running.serves(config.load(file))
