"""End to end: `mainstem serve` delivers to a webhook and chains to a second Mainstem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import WORKSPACE, WRITE_KEY, ServerProcess
from tests.destinations.conftest import Receiver, Serve, wait_for


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
