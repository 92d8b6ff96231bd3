from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import WORKSPACE
from tests.destinations.conftest import Receiver, listen
from tests.scale.harness import Node
from tests.storage.postgres import fresh_schema

Cluster = Callable[[str], Node]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_schema("scale") as url:
        yield url


@pytest.fixture
def sink() -> Iterator[Receiver]:
    """The cluster's test destination: a webhook receiver on loopback."""
    receiver = Receiver("webhook")
    server = listen(receiver)
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def cluster(postgres_url: str, sink: Receiver, tmp_path: Path) -> Iterator[Cluster]:
    """``cluster(role)`` starts a ``mainstem serve --role role`` on the test's schema, with one
    batched webhook destination (``sink``); every node is stopped (and resumed, if a test paused
    it) at the end."""
    config = tmp_path / "mainstem.yaml"
    destination = (
        "destinations:\n"
        "  - id: sink\n"
        "    type: webhook\n"
        "    batch: {size: 100, interval: 0.2s}\n"
        f'    settings: {{url: "{sink.url}/in"}}\n'
    )
    config.write_text(
        WORKSPACE.format(data_dir=tmp_path / "data").replace("destinations: []\n", destination),
        encoding="utf-8",
    )
    nodes: list[Node] = []

    def start(role: str) -> Node:
        node = Node(role, postgres_url, config, tmp_path, f"{role}-{len(nodes)}")
        nodes.append(node)
        node.start()
        return node

    yield start
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            node.stop()
