"""End to end with `mainstem serve`: a webhook through a source function, delivery through a
destination function to a loopback sink, and a function that segfaults on every event costing
neither the server nor the processor."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN, WORKSPACE, ServerProcess
from tests.destinations.conftest import Receiver, Serve, wait_for
from tests.functions.conftest import DELIVERING, write

SOURCE = """\
from mainstem.functions import Segment


def on_request(request, settings):
    order = request.json()
    Segment.track({"userId": order["customer"], "event": "Order Placed", "messageId": order["id"]})
"""

CRASHING = """\
import ctypes


def on_track(event, settings):
    ctypes.string_at(0)
"""


def test_functions_in_a_running_server(serve: Serve, tmp_path: Path) -> None:
    sink = serve(Receiver("webhook"))
    write(tmp_path, "shop.py", SOURCE)
    write(tmp_path, "crm.py", DELIVERING)
    write(tmp_path, "crash.py", CRASHING)
    sources = (
        "sources:\n  - id: shop\n    write_key: shop-write-key\n    function: {file: shop.py}\n"
    )
    destinations = (
        "destinations:\n"
        "  - id: crm\n"
        "    type: function\n"
        "    types: [track]\n"
        f"    function: {{file: crm.py, settings: {{url: '{sink.url}'}}}}\n"
        "  - id: crash\n"
        "    type: function\n"
        "    retry_window: 1s\n"
        "    function: {file: crash.py}\n"
    )
    text = (
        WORKSPACE.format(data_dir=tmp_path / "data")
        .replace("sources:\n", sources)
        .replace("destinations: []\n", destinations)
    )
    config_path = tmp_path / "mainstem.yaml"
    config_path.write_text(text, encoding="utf-8")
    server = ServerProcess(config_path, tmp_path / "data", tmp_path / "server.log")
    server.start()
    try:
        for number in range(3):
            reply = httpx.post(
                f"{server.url}/functions/shop?key=shop-write-key",
                json={"id": f"order-{number}", "customer": "cus_7"},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"success": True, "events": 1}

        stored = server.events(expect=3, source_id="shop")
        assert [m["messageId"] for m in stored] == ["order-0", "order-1", "order-2"]

        wait_for(lambda: len(sink.messages()) == 3, "the CRM sink")
        assert (
            sink.messages() == [{"name": "Order Placed", "user": "cus_7", "from": "function"}] * 3
        )

        def crash_dead_letters() -> int:
            rows = httpx.get(
                f"{server.url}/api/v1/destinations",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ).json()["data"]
            return int(next(row for row in rows if row["id"] == "crash")["dead_letters"])

        wait_for(lambda: crash_dead_letters() == 3, "the crashing function's dead letters")
        deliveries = httpx.get(
            f"{server.url}/api/v1/destinations/crash/deliveries",
            params={"failed": "true"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ).json()["data"]
        assert {row["error"] for row in deliveries} == {
            "Crash: the function's worker process died (killed by SIGSEGV)"
        }
        health = httpx.get(f"{server.url}/health").json()
        assert health["status"] == "ok"
        assert health["processor"] == "running"
    finally:
        assert server.stop() == 0
