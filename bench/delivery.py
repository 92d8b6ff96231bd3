"""Delivery rate: events from the event store (SQLite) to a webhook sink on loopback through the
real courier, unbatched and batched, next to the sink's own ceiling measured in the same run —
how fast a plain client posts the very same bodies to the same sink.

Usage: .venv/bin/python bench/delivery.py [--events 100000] [--single-events 10000]
    [--repeat 3] [--no-write]
Writes the `## Delivery` section of docs/benchmarks.md.

The sink is a separate process (uvicorn, uvloop, httptools, one worker, no access log, as in
bench/ceiling.py) that reads each body, counts the events in it and answers 200, so the figures
also show that nothing was lost. The courier and the ceiling client run in this process, one
request at a time (the courier's concurrency is 1 to keep per-user order).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from mainstem.destinations.courier import Courier
from mainstem.destinations.spec import Destination, Endpoint
from mainstem.destinations.state import SqliteDeliveryState
from mainstem.destinations.transports import for_destination
from mainstem.storage import EventQuery
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from report import write_section  # type: ignore[import-not-found]
from warehouse import fill_store  # bench/ is on sys.path: the warehouse bench's events

ROOT = Path(__file__).resolve().parent.parent
BATCHES = (1, 100, 1000)
TARGET = 20_000

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Sink:
    """The ASGI sink: ``POST`` any path counts the events in the body (``"messageId"`` keys);
    ``GET /count`` answers the total so far."""

    def __init__(self) -> None:
        self.events = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if scope["method"] == "GET":
            body = str(self.events).encode()
        else:
            self.events += b"".join(chunks).count(b'"messageId"')
            body = b'{"success":true}'
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve_sink(port: int) -> None:
    import uvicorn

    uvicorn.run(
        Sink(),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        log_level="warning",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sink() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--sink", str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/count", timeout=1.0)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the sink did not start")


def sink_count(url: str) -> int:
    return int(httpx.get(url + "/count", timeout=5.0).text)


def bodies(store: SqlitePipelineStore, count: int, batch: int) -> list[bytes]:
    """What the webhook courier sends for ``count`` stored events: the message, or a JSON
    array of ``batch`` messages."""
    rows = store.events(EventQuery(after=0, limit=count))
    if batch == 1:
        return [row.body for row in rows]
    return [
        b"[" + b",".join(row.body for row in rows[start : start + batch]) + b"]"
        for start in range(0, len(rows), batch)
    ]


def ceiling(url: str, payloads: list[bytes], events: int) -> float:
    """Events/s a plain keep-alive client reaches posting ``payloads`` one at a time."""
    headers = {"Content-Type": "application/json"}
    with httpx.Client(trust_env=False) as client:
        started = time.perf_counter()
        for payload in payloads:
            reply = client.post(url + "/hook", content=payload, headers=headers)
            reply.raise_for_status()
        elapsed = time.perf_counter() - started
    return events / elapsed


def deliver(
    store: SqlitePipelineStore, url: str, state_path: Path, batch: int, until: int
) -> float:
    """Events/s of a real webhook courier from cursor 0 to seq ``until``."""
    destination = Destination(
        id=f"sink-{batch}",
        type="webhook",
        endpoint=Endpoint(url + "/hook", timeout=10.0),
        batch_size=batch,
        batch_interval=0.0,
    )
    state = SqliteDeliveryState(state_path)
    transport = for_destination(destination)
    courier = Courier(destination, store, state, transport, threading.Event())
    try:
        started, cpu = time.perf_counter(), time.process_time()
        while state.cursor(destination.id) < until:
            step = courier.run_once()
            if step not in {"delivered", "filtered"}:
                raise RuntimeError(f"courier stopped at {step}: {courier.last_error}")
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        delivered = {p.destination: p for p in state.progress()}[destination.id].delivered
    finally:
        transport.close()
        state.close()
    return delivered / elapsed, cpu / delivered * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--single-events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        serve_sink(args.sink)
        return
    rows: list[tuple[int, int, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = fill_store(root / "pipeline.db", args.events)
        sink, url = start_sink()
        try:
            for batch in BATCHES:
                count = args.single_events if batch == 1 else args.events
                until = store.events(EventQuery(after=0, limit=count))[-1].seq
                payloads = bodies(store, count, batch)
                runs, tops = [], []
                for run in range(args.repeat):  # interleaved, so both see the same machine
                    before = sink_count(url)
                    path = root / f"delivery-{batch}-{run}.db"
                    runs.append(deliver(store, url, path, batch, until))
                    received = sink_count(url) - before
                    if received != count:
                        raise RuntimeError(f"batch {batch}: sink counted {received} of {count}")
                    tops.append(ceiling(url, payloads, count))
                rate, cpu = max(runs)
                top = max(tops)
                rows.append((batch, count, rate, top, cpu))
                print(
                    f"batch {batch}: courier {rate:,.0f} events/s ({cpu:.0f} µs CPU/event), "
                    f"ceiling {top:,.0f} events/s, ratio {rate / top:.2f}"
                )
        finally:
            sink.terminate()
            sink.wait()
            store.close()
    section = report(args, rows)
    print(section)
    if not args.no_write:
        write_section("Delivery", section)


def report(args: argparse.Namespace, rows: list[tuple[int, int, float, float, float]]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Delivery",
        "",
        "<!-- Written by bench/delivery.py: this section is replaced on every run. -->",
        "",
        "Command: `.venv/bin/python bench/delivery.py`  ",
        f"Date: {when}",
        "",
        f"- nproc: {os.cpu_count()}; Python {platform.python_version()}",
        f"- {args.events:,} events in the event store (SQLite, the embedded default), the "
        "warehouse bench's mix (track/page/identify 70/20/10, ~1 kB each); unbatched runs "
        f"deliver the first {args.single_events:,}",
        "- *courier*: a real webhook `Courier` from cursor 0: read the store ahead, decode and "
        "route every event, POST the stored bytes (a JSON array when batching), move the cursor "
        "in `delivery.db` per batch, one request at a time",
        "- *ceiling*: a plain `httpx.Client` (keep-alive) posting the very same bodies to the "
        "same sink, one at a time — what any client gets from this sink",
        "- sink: a separate uvicorn process (uvloop, httptools) counting the events it received; "
        "every run checks it got them all",
        f"- each figure is the best of {args.repeat} runs, courier and ceiling interleaved "
        "(fresh `delivery.db` per courier run)",
        f"- load average when it ended: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
        "(other work on the machine slows both columns; CPU µs/event is the courier's own "
        "CPU time, which a busy machine disturbs less)",
        "",
        "| batch size | events | courier events/s | courier CPU µs/event | ceiling events/s "
        "| courier ÷ ceiling |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for batch, count, rate, top, cpu in rows:
        lines.append(
            f"| {batch:,} | {count:,} | {rate:,.0f} | {cpu:.0f} | {top:,.0f} | {rate / top:.2f} |"
        )
    best = max(row[2] for row in rows if row[0] > 1)
    lines += [
        "",
        "Targets:",
        "",
        f"- ≥ {TARGET:,} events/s delivered with batching on SQLite: {best:,.0f} — "
        + ("met" if best >= TARGET else "NOT met"),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
