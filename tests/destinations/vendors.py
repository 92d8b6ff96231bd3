"""A loopback stand-in for a vendor API, for the integration tests: a real HTTP server in a
thread that checks each request against the vendor's documented format and auth (the test
module of each vendor says what is valid), answers like the vendor, and can be scripted to
fail — 429 with ``Retry-After``, bursts of 5xx — so tests see retries deliver everything."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from mainstem.destinations import transports
from mainstem.destinations.courier import Courier, Timing
from mainstem.destinations.spec import Destination, Endpoint
from mainstem.destinations.state import SqliteDeliveryState
from tests.destinations.conftest import Pipeline, reply

FAST = Timing(backoff_base=0.01, backoff_cap=0.05, poll=0.01)
Reply = tuple[int, dict[str, str]]


@dataclass(frozen=True)
class Form:
    """A form-encoded body (``application/x-www-form-urlencoded``): each field once."""

    fields: dict[str, str]


@dataclass(frozen=True)
class Call:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    """Parsed JSON, or a :class:`Form` (only on the vendor's ``forms`` paths)."""
    size: int = 0
    """Bytes in the request body."""


class Refusal(Exception):
    """A request the real API would refuse: ``status`` and the reason (kept in ``refused``)."""

    def __init__(self, status: int, reason: str, body: bytes | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.body = body if body is not None else json.dumps({"error": reason}).encode()


Check = Callable[[Call], bytes]
"""Raises :class:`Refusal` for an invalid request; returns the success body otherwise."""


def ok(n: int) -> Reply:
    return 200, {}


def flaky(*failures: Reply) -> Callable[[int], Reply]:
    """Answer the first valid requests with ``failures``, then succeed."""

    def answer(n: int) -> Reply:
        return failures[n] if n < len(failures) else (200, {})

    return answer


BURST: tuple[Reply, ...] = (
    (429, {"Retry-After": "0"}),
    (500, {}),
    (502, {}),
    (503, {}),
    (504, {}),
    (429, {"Retry-After": "0"}),
    (503, {}),
)
"""Rate limited, then a burst of server errors, then rate limited again."""


@dataclass
class Vendor:
    check: Check
    script: Callable[[int], Reply] = ok
    accepted: list[Call] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    answered: int = 0
    times: list[float] = field(default_factory=list)
    """``time.monotonic()`` of every answer that passed the checks."""
    url: str = ""
    forms: frozenset[str] = frozenset()
    """Paths that take a form-encoded body; every other path takes JSON (else 415)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            try:
                if isinstance(call.body, Form) != (call.path in self.forms):
                    expected = "a form" if call.path in self.forms else "JSON"
                    raise Refusal(415, f"{call.path} takes {expected}")
                body = self.check(call)
            except Refusal as refusal:
                self.refused.append(refusal.reason)
                return refusal.status, {}, refusal.body
            status, headers = self.script(self.answered)
            self.answered += 1
            self.times.append(time.monotonic())
            if 200 <= status < 300:
                self.accepted.append(call)
                return status, headers, body
            return status, headers, b'{"error":"try again"}'

    def bodies(self, path: str | None = None) -> list[Any]:
        with self.lock:
            return [call.body for call in self.accepted if path is None or call.path == path]

    def received(self) -> list[tuple[str, Any]]:
        """``(path, body)`` of every accepted request, in order."""
        with self.lock:
            return [(call.path, call.body) for call in self.accepted]


def basic_user(headers: dict[str, str]) -> tuple[str, str]:
    """The user and password of ``Authorization: Basic``, or refuse with 401."""
    value = headers.get("authorization", "")
    if not value.startswith("Basic "):
        raise Refusal(401, "no Basic auth")
    user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    return user, password


def json_body(raw: bytes, headers: dict[str, str]) -> Any:
    if headers.get("content-type") != "application/json":
        raise Refusal(415, f"content-type {headers.get('content-type')!r}")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Refusal(400, "body is not JSON") from exc


def form_or_json(raw: bytes, headers: dict[str, str]) -> Any:
    """A :class:`Form` for ``application/x-www-form-urlencoded``, else :func:`json_body`."""
    if headers.get("content-type") != "application/x-www-form-urlencoded":
        return json_body(raw, headers)
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refusal(400, "body is not form-encoded") from exc
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise Refusal(400, "a form field is repeated")
    return Form(fields)


def _handler(vendor: Vendor, parse: Callable[[bytes, dict[str, str]], Any]) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {key.lower(): value for key, value in self.headers.items()}
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            try:
                call = Call(parts.path, query, headers, parse(raw, headers), len(raw))
                status, extra, payload = vendor.handle(call)
            except Refusal as refusal:
                with vendor.lock:
                    vendor.refused.append(refusal.reason)
                status, extra, payload = refusal.status, {}, refusal.body
            reply(self, status, extra, payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


Start = Callable[[Vendor], Vendor]


@contextlib.contextmanager
def serving() -> Iterator[Start]:
    """``start(vendor)`` serves ``vendor`` on a loopback port until the block ends (the
    ``vendor_server`` fixture of conftest)."""
    servers: list[ThreadingHTTPServer] = []

    def start(vendor: Vendor) -> Vendor:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(vendor, form_or_json))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        vendor.url = f"http://127.0.0.1:{server.server_address[1]}"
        return vendor

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def destination(
    kind: str, url: str, options: dict[str, Any], *, batch_size: int = 50, **changes: Any
) -> Destination:
    """A destination of an integration type pointed at a loopback vendor."""
    endpoint = Endpoint(url, timeout=5.0, options=options)
    base: dict[str, Any] = {
        "id": kind,
        "type": kind,
        "endpoint": endpoint,
        "batch_size": batch_size,
        "batch_interval": 0.0,
    }
    return Destination(**(base | changes))


def deliver(
    pipeline: Pipeline, dest: Destination, state_dir: Path
) -> tuple[list[str], SqliteDeliveryState]:
    """Run a real courier until it has nothing left; returns its steps and the state (the
    caller closes it)."""
    state = SqliteDeliveryState(state_dir / "delivery.db")
    transport = transports.for_destination(dest)
    try:
        courier = Courier(dest, pipeline.store, state, transport, threading.Event(), timing=FAST)
        steps = []
        while (step := courier.run_once()) not in {"idle", "waiting"}:
            steps.append(step)
    finally:
        transport.close()
    return steps, state


def stamped(*messages: dict[str, Any]) -> Sequence[dict[str, Any]]:
    """Messages with a messageId and a fixed timestamp unless they set their own."""
    return [
        {"messageId": f"msg-{n}", "timestamp": "2026-03-04T05:06:07.890Z"} | message
        for n, message in enumerate(messages)
    ]


TIME_MS = 1772600767890
"""``2026-03-04T05:06:07.890Z`` in milliseconds."""
