"""Seeing and repairing: the admin API, /metrics, the CLI and replays, on real files."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from mainstem import config
from mainstem.app import App
from mainstem.cli import app as cli
from mainstem.destinations import service, transports
from mainstem.destinations.courier import Courier, Timing
from mainstem.destinations.state import SqliteDeliveryState
from tests.conftest import ADMIN_TOKEN, WORKSPACE, WRITE_KEY
from tests.destinations.conftest import Receiver, Serve

runner = CliRunner()
FAST = Timing(backoff_base=0.01, backoff_cap=0.02, poll=0.01)
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Setup:
    def __init__(self, tmp_path: Path, receiver: Receiver) -> None:
        self.data = tmp_path / "data"
        self.config = tmp_path / "mainstem.yaml"
        destinations = f"""destinations:
  - id: hooks
    type: webhook
    consent_categories: [Analytics]
    retry_window: 0.05s
    settings: {{url: "{receiver.url}/hook"}}
"""
        self.config.write_text(
            WORKSPACE.format(data_dir=self.data).replace("destinations: []\n", destinations)
        )
        self.workspace = config.load(self.config)
        self.destination = self.workspace.destinations[0]


@pytest.fixture
def setup(tmp_path: Path, serve: Serve) -> Iterator[tuple[Setup, Receiver, TestClient, App]]:
    up = threading.Event()
    receiver = serve(Receiver("webhook", behaviour=lambda n: (200 if up.is_set() else 500, {})))
    receiver.up = up  # type: ignore[attr-defined]
    made = Setup(tmp_path, receiver)
    app = App(made.workspace, processor="none", reload_interval=0)
    with TestClient(app) as client:
        yield made, receiver, client, app


def deliver(made: Setup, app: App) -> None:
    """Process the log, then let the courier run until it is idle."""
    processor = app.processor()
    processor.drain()
    state = SqliteDeliveryState(made.data / "delivery.db")
    transport = transports.for_destination(made.destination)
    courier = Courier(
        made.destination, processor.store, state, transport, threading.Event(), timing=FAST
    )
    while courier.run_once() not in {"idle", "waiting"}:
        pass
    transport.close()
    state.close()
    processor.store.close()


def post(client: TestClient, *messages: dict[str, Any]) -> None:
    reply = client.post("/v1/batch", json={"batch": list(messages)}, auth=(WRITE_KEY, ""))
    assert reply.status_code == 200, reply.text


def test_api_metrics_cli_and_replay_of_dead_letters(
    setup: tuple[Setup, Receiver, TestClient, App],
) -> None:
    made, receiver, client, app = setup
    post(
        client,
        {"type": "track", "event": "A", "userId": "u1", "messageId": "m1"},
        {
            "type": "track",
            "event": "B",
            "userId": "u1",
            "messageId": "m2",
            "context": {"consent": {"categoryPreferences": {"Analytics": False}}},
        },
    )
    deliver(made, app)  # the receiver answers 500: m1 is dead after the 0.05 s window

    listing = client.get("/api/v1/destinations", headers=AUTH)
    assert listing.status_code == 200
    (row,) = listing.json()["data"]
    assert {k: row[k] for k in ("id", "type", "delivered", "filtered", "dead_letters", "lag")} == {
        "id": "hooks",
        "type": "webhook",
        "delivered": 0,
        "filtered": 1,
        "dead_letters": 1,
        "lag": 0,
    }
    assert row["last_error"] == 'HTTP 500: {"error":"nope"}'
    failed = client.get("/api/v1/destinations/hooks/deliveries?failed=true", headers=AUTH).json()
    assert {item["outcome"] for item in failed["data"]} <= {"retry", "dead"}
    assert failed["data"][0]["outcome"] == "dead"
    missing = client.get("/api/v1/destinations/nope/deliveries", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "code": "unknown_destination",
            "message": "no destination 'nope' in mainstem.yaml — known: hooks",
        }
    }
    assert client.get("/api/v1/destinations").status_code == 401
    metrics = client.get("/metrics").text
    assert 'mainstem_destination_events_dead_total{destination="hooks"} 1.0' in metrics
    assert 'mainstem_destination_events_filtered_total{destination="hooks"} 1.0' in metrics
    assert 'mainstem_destination_lag{destination="hooks"} 0.0' in metrics

    table = runner.invoke(cli, ["destinations", "--config", str(made.config), "--json"])
    assert table.exit_code == 0, table.output
    assert json.loads(table.output)[0]["dead_letters"] == 1
    log = runner.invoke(cli, ["deliveries", "--failed", "--config", str(made.config), "--json"])
    assert log.exit_code == 0, log.output
    assert json.loads(log.output)[0]["outcome"] == "dead"

    receiver.up.set()  # type: ignore[attr-defined]
    dry = runner.invoke(
        cli, ["replay", "-d", "hooks", "--dead-letters", "--dry-run", "-c", str(made.config)]
    )
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.strip() == "would send 1 event(s) to hooks in 0 request(s); 0 not sent"
    assert receiver.messages() == []
    done = runner.invoke(cli, ["replay", "-d", "hooks", "--dead-letters", "-c", str(made.config)])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "sent 1 event(s) to hooks in 1 request(s); 0 not sent"
    assert [m["messageId"] for m in receiver.messages()] == ["m1"]
    again = runner.invoke(cli, ["replay", "-d", "hooks", "--dead-letters", "-c", str(made.config)])
    assert again.stdout.strip() == "sent 0 event(s) to hooks in 0 request(s); 0 not sent"


def test_metrics_say_why_events_were_dropped_how_late_delivery_is_and_what_waits(
    setup: tuple[Setup, Receiver, TestClient, App],
) -> None:
    made, receiver, client, app = setup
    receiver.up.set()  # type: ignore[attr-defined]
    denied = {"consent": {"categoryPreferences": {"Analytics": False}}}
    post(
        client,
        {"type": "track", "event": "A", "userId": "u1", "messageId": "m1"},
        {"type": "track", "event": "B", "userId": "u1", "messageId": "m2", "context": denied},
        {"type": "track", "event": "C", "userId": "u1", "messageId": "m3", "context": denied},
        {
            "type": "track",
            "event": "D",
            "userId": "u1",
            "messageId": "m4",
            "integrations": {"hooks": False},
        },
    )
    deliver(made, app)
    (row,) = client.get("/api/v1/destinations", headers=AUTH).json()["data"]
    assert (row["delivered"], row["filtered"]) == (1, 3)
    assert row["filtered_by"] == {"consent": 2, "integrations": 1}
    assert row["latency_seconds"] is not None and row["latency_seconds"] >= 0
    assert (row["lag"], row["oldest_undelivered_seconds"]) == (0, 0)
    metrics = client.get("/metrics").text
    assert (
        'mainstem_destination_events_dropped_total{destination="hooks",reason="consent"} 2.0'
        in metrics
    )
    assert (
        'mainstem_destination_events_dropped_total{destination="hooks",reason="integrations"} 1.0'
        in metrics
    )
    assert 'mainstem_destination_latency_seconds{destination="hooks"}' in metrics

    post(client, {"type": "track", "event": "E", "userId": "u1", "messageId": "m5"})
    app.processor().drain()  # stored, not delivered yet: it waits, and ages
    (row,) = client.get("/api/v1/destinations", headers=AUTH).json()["data"]
    assert row["lag"] == 1
    assert row["oldest_undelivered_seconds"] > 0
    gauge = 'mainstem_destination_oldest_undelivered_seconds{destination="hooks"} '
    [line] = [x for x in client.get("/metrics").text.splitlines() if x.startswith(gauge)]
    assert float(line.removeprefix(gauge)) > 0


def test_range_replay_keeps_consent_and_ignores_integrations(
    setup: tuple[Setup, Receiver, TestClient, App],
) -> None:
    made, receiver, client, app = setup
    receiver.up.set()  # type: ignore[attr-defined]
    post(
        client,
        {"type": "track", "event": "A", "userId": "u1", "messageId": "m1"},
        {
            "type": "track",
            "event": "B",
            "userId": "u1",
            "messageId": "m2",
            "integrations": {"All": False},
        },
        {
            "type": "track",
            "event": "C",
            "userId": "u1",
            "messageId": "m3",
            "context": {"consent": {"categoryPreferences": {}}},
        },
    )
    deliver(made, app)
    assert [m["messageId"] for m in receiver.messages()] == ["m1"]
    result = runner.invoke(
        cli, ["replay", "--destination", "hooks", "--since", "1h", "-c", str(made.config)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "sent 2 event(s) to hooks in 2 request(s); 1 not sent",
        "  1 × consent: categoryPreferences has no 'Analytics' (a missing category counts as "
        "false)",
    ]
    assert [m["messageId"] for m in receiver.messages()] == ["m1", "m1", "m2"]


def test_replay_needs_one_selection_and_a_known_destination(
    setup: tuple[Setup, Receiver, TestClient, App],
) -> None:
    made, _, _, _ = setup
    deliver(made, setup[3])
    both = runner.invoke(cli, ["replay", "-d", "hooks", "-c", str(made.config)])
    assert both.exit_code == 1
    assert "replay needs either --dead-letters or --since" in both.output
    unknown = runner.invoke(cli, ["replay", "-d", "nope", "--dead-letters", "-c", str(made.config)])
    assert unknown.exit_code == 1
    assert "no destination 'nope' in mainstem.yaml — known: hooks" in unknown.output
    with pytest.raises(service.RequestError):
        service.replay(made.destination, None, None, dead_letters=True, since=1)  # type: ignore[arg-type]


def test_explain_says_why_an_event_does_or_does_not_go(
    setup: tuple[Setup, Receiver, TestClient, App],
) -> None:
    _, _, client, app = setup
    post(
        client,
        {"type": "track", "event": "A", "userId": "u1", "messageId": "m1"},
        {
            "type": "track",
            "event": "B",
            "userId": "u1",
            "messageId": "m2",
            "context": {"consent": {"categoryPreferences": {"Analytics": False}}},
        },
    )
    processor = app.processor()
    processor.drain()
    processor.store.close()
    url = "/api/v1/destinations/hooks/explain"
    yes = client.get(url, params={"message_id": "m1"}, headers=AUTH).json()["data"]
    assert [(r["source_id"], r["deliver"], r["reason"]) for r in yes] == [
        ("web", True, "delivered")
    ]
    no = client.get(url, params={"message_id": "m2"}, headers=AUTH).json()["data"]
    assert [(r["deliver"], r["reason"]) for r in no] == [
        (False, "consent: category 'Analytics' is false")
    ]
    missing = client.get(url, params={"message_id": "m9"}, headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "unknown_event",
        "message": "no stored event has messageId 'm9' — check GET /api/v1/events",
    }


def test_a_replay_is_paced_to_its_rate() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    pace = service.Pacer(50.0, clock=lambda: now[0], sleep=sleep)
    pace.wait(100)  # the first batch goes at once
    pace.wait(100)  # 100 events at 50/s: 2 s after the first
    now[0] += 0.5  # the destination took half a second to answer
    pace.wait(10)  # so 1.5 s more, then 0.2 s for these 10
    pace.wait(10)
    assert slept == [2.0, 1.5, 0.2]
    unlimited = service.Pacer(None, clock=lambda: now[0], sleep=sleep)
    unlimited.wait(10_000)
    assert slept == [2.0, 1.5, 0.2]


def test_replay_takes_a_rate(setup: tuple[Setup, Receiver, TestClient, App]) -> None:
    made, receiver, client, app = setup
    receiver.up.set()  # type: ignore[attr-defined]
    post(
        client,
        *({"type": "track", "event": "E", "userId": "u", "messageId": f"r{n}"} for n in range(3)),
    )
    app.processor().drain()
    done = runner.invoke(
        cli, ["replay", "-d", "hooks", "--since", "1h", "--rate", "1000", "-c", str(made.config)]
    )
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "sent 3 event(s) to hooks in 3 request(s); 0 not sent"
    assert [m["messageId"] for m in receiver.messages()] == ["r0", "r1", "r2"]
    refused = runner.invoke(cli, ["replay", "-d", "hooks", "--since", "1h", "--rate", "0"])
    assert refused.exit_code == 2
    assert "--rate" in refused.output


def test_a_reader_sees_no_delivery_state_until_the_processor_has_created_it(
    tmp_path: Path,
) -> None:
    assert service.open_state(tmp_path) is None
    # The processor's connect creates the file before its migrations commit.
    (tmp_path / "delivery.db").touch()
    assert service.open_state(tmp_path) is None
    SqliteDeliveryState(tmp_path / "delivery.db").close()
    state = service.open_state(tmp_path)
    assert state is not None
    assert state.progress() == []
    state.close()
