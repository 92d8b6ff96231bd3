"""Real pieces for delivery tests: an event log + processor + event store, and loopback HTTP
receivers that enforce a destination's format and auth and can be told to fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mainstem.intake import Limits
from mainstem.logrecord import LogRecord
from mainstem.processor import Processor
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

Reply = tuple[int, dict[str, str]]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """``behaviour(n)`` answers the n-th request (0-based) that passed the format checks."""

    kind: str  # "webhook", "segment" or "slack"
    secret: str | None = None
    behaviour: Callable[[int], Reply] = lambda n: (200, {})
    requests: list[Received] = field(default_factory=list)
    """Every accepted (2xx) request."""
    refused: list[str] = field(default_factory=list)
    """Why requests failed the format or auth checks."""
    answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            out: list[dict[str, Any]] = []
            for request in self.requests:
                body = request.body
                if self.kind == "segment":
                    out.extend(body["batch"])
                elif self.kind == "slack":
                    out.append(body)
                else:
                    out.extend(body if isinstance(body, list) else [body])
            return out

    def check(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[Any, str | None]:
        try:
            body = json.loads(raw)
        except ValueError:
            return None, "body is not JSON"
        if headers.get("content-type") != "application/json":
            return body, f"content-type {headers.get('content-type')!r}"
        if self.kind == "segment":
            if path != "/v1/batch":
                return body, f"path {path}"
            expected = "Basic " + base64.b64encode(f"{self.secret}:".encode()).decode()
            if headers.get("authorization") != expected:
                return body, "bad basic auth"
            if not isinstance(body.get("batch"), list) or "sentAt" not in body:
                return body, "not a Segment batch"
        elif self.kind == "slack":
            if set(body) != {"text"} or not isinstance(body["text"], str):
                return body, "not a Slack message"
        elif self.secret is not None:
            first = body[0] if isinstance(body, list) else body
            signed = json.dumps(first, separators=(",", ":"), ensure_ascii=False).encode()
            digest = hmac.new(self.secret.encode(), signed, hashlib.sha1).hexdigest()
            if headers.get("x-signature") != digest:
                return body, "bad X-Signature"
        return body, None

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        body, problem = self.check(path, headers, raw)
        with self.lock:
            if problem is not None:
                self.refused.append(problem)
                return 401 if "auth" in problem or "Signature" in problem else 400, {}
            status, extra = self.behaviour(self.answered)
            self.answered += 1
            if 200 <= status < 300:
                self.requests.append(Received(path, headers, body))
            return status, extra


def reply(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: bytes
) -> None:
    """Answer a loopback request with a JSON ``payload``."""
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length)
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, extra = receiver.handle(self.path, headers, raw)
            payload = b'{"success":true}' if status < 300 else b'{"error":"nope"}'
            reply(self, status, extra, payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def listen(receiver: Receiver) -> ThreadingHTTPServer:
    """Serve ``receiver`` on a loopback port (its ``url``) until the server is shut down."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server


@pytest.fixture
def serve() -> Iterator[Callable[[Receiver], Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(receiver: Receiver) -> Receiver:
        servers.append(listen(receiver))
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class Pipeline:
    """The real event log, processor and event store in a temp dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = SqliteEventLog(root / "log-0.db")
        self.store = SqlitePipelineStore(root / "pipeline.db")
        self.processor = Processor(self.log, self.store, limits=Limits(), dedupe_window=86400)
        self.sent = 0

    def send(self, *messages: dict[str, Any], source: str = "web") -> None:
        record = LogRecord(
            source_id=source,
            received_at=int(time.time() * 1_000_000),
            body=json.dumps({"batch": list(messages)}).encode(),
        )
        self.log.append([record])
        self.processor.drain()

    def tracks(self, count: int, **extra: Any) -> list[str]:
        """Send ``count`` track events in batches of 50; returns their messageIds."""
        ids = []
        for start in range(0, count, 50):
            chunk = []
            for n in range(start, min(count, start + 50)):
                message_id = f"m-{self.sent + n}"
                ids.append(message_id)
                chunk.append(
                    {
                        "type": "track",
                        "event": "Order Completed",
                        "userId": f"u{n % 7}",
                        "messageId": message_id,
                        "properties": {"n": n},
                    }
                    | extra
                )
            self.send(*chunk)
        self.sent += count
        return ids

    def close(self) -> None:
        self.store.close()
        self.log.close()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    result = Pipeline(tmp_path)
    yield result
    result.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


Serve = Callable[[Receiver], Receiver]


@pytest.fixture
def vendor_server() -> Iterator[Callable[[Any], Any]]:
    """Start loopback vendor APIs (:mod:`tests.destinations.vendors`)."""
    from tests.destinations import vendors  # imports this module: import it late

    with vendors.serving() as start:
        yield start
