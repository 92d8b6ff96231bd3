"""A cluster of real ``mainstem serve`` processes on the real PostgreSQL: N gateways, M workers,
clients that stream batches at them, and the faults to inject.

Every process runs in its own session (process group), so a fault hits the whole process tree:
a worker's ``serve`` process and its processor child are killed or paused together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, free_port, start_serve, wait_for
from tests.destinations.conftest import Receiver
from tests.senders import BATCH, BatchSender


class Node:
    """One ``mainstem serve --role ROLE`` process on a loopback port."""

    def __init__(
        self, role: str, url: str, config: Path, workdir: Path, name: str, lease_ttl: str = "2s"
    ) -> None:
        self.role = role
        self.url = url
        self.config = config
        self.name = name
        self.lease_ttl = lease_ttl
        self.log_path = workdir / f"{name}.log"
        self.data_dir = workdir / f"{name}-data"
        self.port = free_port()
        self.http = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if k != "MAINSTEM_DATABASE_URL"}
        args = ["--config", str(self.config), "--data-dir", str(self.data_dir)]
        args += ["--database", self.url, "--role", self.role, "--lease-ttl", self.lease_ttl]
        self.process = start_serve(
            args, self.port, self.log_path, timeout, name=self.name, env=env, new_session=True
        )

    def signal(self, sig: int) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process tree, at once."""
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.process.wait(10)

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.http}/health", timeout=5)
        assert response.status_code in (200, 503), f"{self.name} /health: {response.text}"
        data: dict[str, Any] = response.json()
        return data


class Client(BatchSender):
    """One client for one user, sticky to one gateway: track events numbered in order."""

    def __init__(self, index: int, gateways: list[Node], stop: threading.Event) -> None:
        super().__init__(f"client-{index}", gateways[index % len(gateways)].http, stop, 0.05)
        self.user = f"user-{index}"

    def messages(self, n: int) -> list[dict[str, Any]]:
        return [
            {
                "type": "track",
                "event": "Scale Test",
                "userId": self.user,
                "messageId": f"{self.user}-{n * BATCH + i}",
                "properties": {"n": n * BATCH + i},
            }
            for i in range(BATCH)
        ]


class Load:
    """Clients streaming at the gateways until stopped."""

    def __init__(self, gateways: list[Node], clients: int) -> None:
        self.stop_event = threading.Event()
        self.clients = [Client(i, gateways, self.stop_event) for i in range(clients)]

    def __enter__(self) -> Load:
        for client in self.clients:
            client.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def progress(self, batches: int, timeout: float, what: str) -> None:
        """Until every client got ``batches`` more 200s than it has now."""
        targets = [client.counts()[0] + batches for client in self.clients]
        wait_for(
            lambda: all(c.counts()[0] >= t for c, t in zip(self.clients, targets, strict=True)),
            timeout,
            what,
        )

    def stop(self) -> None:
        self.stop_event.set()
        for client in self.clients:
            client.join(timeout=15)
        assert not [c.name for c in self.clients if c.is_alive()], "a client did not stop"
        crashed = {c.name: repr(c.crash) for c in self.clients if c.crash is not None}
        assert not crashed, f"clients crashed: {crashed}"
        unexpected = {c.name: c.unexpected for c in self.clients if c.unexpected}
        assert not unexpected, f"answers other than 200/503: {unexpected}"


def stored_events(node: Node) -> list[dict[str, Any]]:
    """Every stored event, in event-store order, tailing ``/api/v1/events`` with ``after``."""
    found: list[dict[str, Any]] = []
    after = "0"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=node.http, headers=headers, timeout=10) as client:
        while True:
            response = client.get("/api/v1/events", params={"after": after, "limit": 1000})
            assert response.status_code == 200, response.text
            page = response.json()
            if not page["data"]:
                return found
            found.extend(item["message"] for item in page["data"])
            after = page["next_after"]


def caught_up(node: Node, timeout: float = 60.0) -> list[dict[str, Any]]:
    def no_lag() -> bool:
        try:
            return node.health().get("log_lag") == 0
        except httpx.HTTPError:
            return False

    wait_for(no_lag, timeout, f"the workers to catch up (log_lag 0 on {node.name})")
    return stored_events(node)


def assert_exactly_once_in_order(stored: list[dict[str, Any]], clients: list[Client]) -> None:
    sent = set().union(*(c.sent for c in clients))
    acked = set().union(*(c.acked for c in clients))
    counts = Counter(message["messageId"] for message in stored)
    duplicates = sorted(mid for mid, count in counts.items() if count > 1)
    missing = sorted(acked - counts.keys())
    never_sent = sorted(counts.keys() - sent)
    assert not duplicates, f"{len(duplicates)} messageIds stored more than once: {duplicates[:20]}"
    assert not missing, f"{len(missing)} messageIds answered 200 but not stored: {missing[:20]}"
    assert not never_sent, f"{len(never_sent)} stored messageIds never sent: {never_sent[:20]}"
    by_user: dict[str, list[int]] = {}
    for message in stored:
        by_user.setdefault(message["userId"], []).append(message["properties"]["n"])
    out_of_order = {user: ns for user, ns in by_user.items() if ns != sorted(ns)}
    assert not out_of_order, f"per-user order broken for {sorted(out_of_order)}"


def assert_delivered_at_least_once(sink: Receiver, clients: list[Client]) -> None:
    """Every messageId answered 200 reaches the test destination (again after a fault is
    fine: at-least-once), and nothing that was never sent does."""
    acked = set().union(*(c.acked for c in clients))
    sent = set().union(*(c.sent for c in clients))

    def delivered() -> set[str]:
        return {message["messageId"] for message in sink.messages()}

    wait_for(lambda: acked <= delivered(), 60, "every acknowledged event to be delivered")
    never_sent = sorted(delivered() - sent)
    assert not never_sent, f"{len(never_sent)} delivered messageIds never sent: {never_sent[:20]}"
    assert not sink.refused, f"the destination refused requests: {sink.refused[:5]}"
