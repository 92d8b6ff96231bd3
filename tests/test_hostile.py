"""Hostile input at the Tracking API (reference §1.4, §1.6, §1.7).

Every hostile request gets a clear answer (an exact status and, for errors, the JSON body
``{"success": false, "code", "message", "error"}``), never a ``500``, and the server keeps
serving: after each one, a valid request still gets its ``200`` and its event is stored (which
also proves the processor did not choke on what the gateway let through).
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import h11
import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, WRITE_KEY, InProcess, ServerProcess

AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GZIP = {"Content-Encoding": "gzip"}
MAX_REQUEST = 512_000
MAX_EVENT = 32_768


def track(event: bytes = b'"Hostile"', properties: bytes = b"{}", message_id: str = "") -> bytes:
    """A track message as raw JSON bytes, so the hostile part goes on the wire verbatim."""
    mid = f',"messageId":"{message_id}"'.encode() if message_id else b""
    return b'{"type":"track","userId":"hostile-user","event":%s,"properties":%s%s}' % (
        event,
        properties,
        mid,
    )


def batch(*elements: bytes) -> bytes:
    return b'{"batch":[' + b",".join(elements) + b"]}"


def as_body(path: str, element: bytes) -> bytes:
    """``element`` as the body of ``path``: itself on a single-event path, wrapped in a batch."""
    return batch(element) if path == "/v1/batch" else element


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


class Response(Protocol):
    """What ``answer`` reads: an ``httpx`` response, or the test client's (``httpx2``)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def answer(response: Response) -> tuple[int, str]:
    """(status, code) — the code of an error body, ``ok`` for a success body, or what came
    back when the body is not the documented JSON (so a failure shows it)."""
    try:
        payload = response.json()
    except ValueError:
        return response.status_code, f"<not JSON: {response.text[:120]!r}>"
    if not isinstance(payload, dict):
        return response.status_code, f"<not an object: {response.text[:120]!r}>"
    if payload == {"success": True}:
        return response.status_code, "ok"
    if (
        payload.get("success") is not False
        or not payload.get("message")
        or payload.get("error") != payload.get("message")
    ):
        return response.status_code, f"<malformed error body: {response.text[:120]!r}>"
    return response.status_code, str(payload.get("code"))


def stored_raw(inproc: InProcess, message_id: str) -> bytes:
    """The ``/api/v1/events`` answer for ``message_id`` as bytes: the API splices stored events
    in verbatim, and a JSON parser with a recursion limit must not stand between the test and
    what was stored."""
    inproc.process()
    response = inproc.client.get("/api/v1/events", params={"message_id": message_id}, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.content


def send(inproc: InProcess, path: str, element: bytes) -> tuple[int, str]:
    """POST ``element`` to ``path`` (wrapped in a batch for ``/v1/batch``); (status, code)."""
    return answer(inproc.client.post(path, content=as_body(path, element), headers=AUTH))


def assert_still_serving(inproc: InProcess) -> None:
    message_id = f"alive-{uuid.uuid4().hex}"
    response = inproc.client.post("/v1/track", content=track(message_id=message_id), headers=AUTH)
    assert answer(response) == (200, "ok")
    events = inproc.events(message_id=message_id)
    assert [event["messageId"] for event in events] == [message_id]


def gzip_bomb() -> bytes:
    return gzip.compress(b"0" * 10_000_000, compresslevel=9)


def chunks(total: int, size: int = 64_000) -> Iterator[bytes]:
    """A streamed body with no Content-Length (chunked transfer encoding)."""
    while total > 0:
        yield b" " * min(size, total)
        total -= size


VALID_GZIP = gzip.compress(batch(track()))


def bad(name: str, path: str, body: bytes, code: str, headers: dict[str, str] | None = None) -> Any:
    """A hostile request answered ``400`` with ``code``."""
    return pytest.param(path, body, headers or {}, 400, code, id=name)


# (path, body, extra headers, status, code)
HOSTILE = [
    # Bytes that are not UTF-8: RFC 8259 §8.1 says JSON text is UTF-8.
    bad("latin1-single", "/v1/track", track(b'"caf\xe9"'), "invalid_json"),
    bad("ff-single", "/v1/track", track(b'"\xff\xfe"'), "invalid_json"),
    bad("overlong-utf8-single", "/v1/track", track(b'"\xc0\xaf"'), "invalid_json"),
    bad("utf8-encoded-surrogate-single", "/v1/track", track(b'"\xed\xa0\x80"'), "invalid_json"),
    bad("cut-multibyte-single", "/v1/track", track(b'"\xe2\x82"'), "invalid_json"),
    bad("latin1-batch", "/v1/batch", batch(track(b'"caf\xe9"')), "invalid_json"),
    bad("ff-batch", "/v1/batch", batch(track(b'"\xff\xfe"')), "invalid_json"),
    bad(
        "ff-in-envelope-batch",
        "/v1/batch",
        b'{"note":"\xff","batch":[' + track() + b"]}",
        "invalid_json",
    ),
    bad("utf16-single", "/v1/track", "{}".encode("utf-16"), "invalid_json"),
    # Not JSON at all, or cut short.
    bad("empty-single", "/v1/track", b"", "invalid_json"),
    bad("empty-batch", "/v1/batch", b"", "invalid_json"),
    bad("invalid-single", "/v1/track", b"{not json", "invalid_json"),
    bad("invalid-batch", "/v1/batch", b'{"batch":[1,]}', "invalid_json"),
    bad("truncated-single", "/v1/track", track()[:-7], "invalid_json"),
    bad("truncated-batch", "/v1/batch", batch(track(), track())[:-20], "invalid_json"),
    bad("invalid-over-event-limit-single", "/v1/track", b"{" + b" " * 40_000, "invalid_json"),
    bad("raw-nul-byte-single", "/v1/track", track(b'"a\x00b"'), "invalid_json"),
    # JSON, but not an object.
    bad("array-single", "/v1/track", b"[]", "message_not_object"),
    bad("string-single", "/v1/track", b'"x"', "message_not_object"),
    bad("number-single", "/v1/track", b"1", "message_not_object"),
    bad("null-single", "/v1/track", b"null", "message_not_object"),
    bad("array-batch", "/v1/batch", b"[]", "invalid_json"),
    bad("string-batch", "/v1/batch", b'"x"', "invalid_json"),
    bad("number-batch", "/v1/batch", b"1", "invalid_json"),
    bad("null-batch", "/v1/batch", b"null", "invalid_json"),
    bad("batch-is-string", "/v1/batch", b'{"batch":"x"}', "invalid_json"),
    bad("batch-is-object", "/v1/batch", b'{"batch":{"type":"track"}}', "invalid_json"),
    # Nesting deeper than any decoder recursion limit.
    bad("deep-100k-single", "/v1/track", b"[" * 100_000, "invalid_json"),
    bad("deep-20k-under-event-limit-single", "/v1/track", b"[" * 20_000, "invalid_json"),
    bad(
        "deep-20k-in-properties-single",
        "/v1/track",
        track(properties=b'{"x":' + b"[" * 20_000),
        "invalid_json",
    ),
    bad("deep-100k-batch", "/v1/batch", b"[" * 100_000, "invalid_json"),
    bad("deep-100k-in-envelope-batch", "/v1/batch", b'{"batch":' + b"[" * 100_000, "invalid_json"),
    bad(
        "deep-100k-in-element-batch",
        "/v1/batch",
        batch(track(properties=b'{"x":%s}' % nested(100_000))),
        "invalid_json",
    ),
    # Numbers no JSON decoder here can represent (a float beyond double, a 5,000-digit int).
    bad("1e400-single", "/v1/track", track(properties=b'{"x":1e400}'), "invalid_json"),
    bad("minus-1e400-single", "/v1/track", track(properties=b'{"x":-1e400}'), "invalid_json"),
    bad(
        "5000-digit-int-single",
        "/v1/track",
        track(properties=b'{"x":%s}' % (b"9" * 5000)),
        "invalid_json",
    ),
    # Lone UTF-16 surrogates, escaped: valid JSON grammar, but no Unicode string exists for them.
    bad("lone-high-surrogate-single", "/v1/track", track(b'"\\ud800"'), "invalid_json"),
    bad("lone-low-surrogate-single", "/v1/track", track(b'"x\\udc00y"'), "invalid_json"),
    bad("lone-surrogate-batch", "/v1/batch", batch(track(b'"\\ud800"')), "invalid_json"),
    # Compression.
    bad("gzip-bomb-batch", "/v1/batch", gzip_bomb(), "payload_too_large", GZIP),
    bad("gzip-bomb-single", "/v1/track", gzip_bomb(), "payload_too_large", GZIP),
    bad(
        "corrupt-gzip", "/v1/batch", b"\x1f\x8b\x08\x00" + b"garbage" * 10, "invalid_encoding", GZIP
    ),
    bad("plain-json-labelled-gzip", "/v1/batch", batch(track()), "invalid_encoding", GZIP),
    bad(
        "truncated-gzip", "/v1/batch", VALID_GZIP[: len(VALID_GZIP) // 2], "invalid_encoding", GZIP
    ),
    bad("brotli", "/v1/batch", b"\x00\x01\x02", "unsupported_encoding", {"Content-Encoding": "br"}),
    bad("zstd", "/v1/batch", VALID_GZIP, "unsupported_encoding", {"Content-Encoding": "zstd"}),
    bad(
        "stacked-encodings",
        "/v1/batch",
        VALID_GZIP,
        "unsupported_encoding",
        {"Content-Encoding": "gzip, br"},
    ),
    # Size.
    bad("over-512000-batch", "/v1/batch", b" " * (MAX_REQUEST + 1), "payload_too_large"),
    bad("over-512000-single", "/v1/track", b" " * (MAX_REQUEST + 1), "payload_too_large"),
    bad(
        "huge-content-length",
        "/v1/batch",
        b'{"batch":[]}',
        "payload_too_large",
        {"Content-Length": "99999999999999999999"},
    ),
    bad(
        "40k-event-name-single", "/v1/track", track(b'"%s"' % (b"e" * 40_000)), "message_too_large"
    ),
    bad(
        "10k-message-id-single", "/v1/track", track(message_id="m" * 10_000), "message_id_too_long"
    ),
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "code"), HOSTILE)
def test_hostile_request_gets_a_clear_answer_and_the_server_keeps_serving(
    inproc: InProcess, path: str, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    response = inproc.client.post(path, content=body, headers={**AUTH, **headers})
    assert answer(response) == (status, code)
    assert response.headers["content-type"] == "application/json"
    assert_still_serving(inproc)


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/track"])
def test_body_over_the_limit_without_content_length(inproc: InProcess, path: str) -> None:
    response = inproc.client.post(path, content=chunks(MAX_REQUEST + 1), headers=AUTH)
    assert "content-length" not in response.request.headers
    assert answer(response) == (400, "payload_too_large")
    assert_still_serving(inproc)


# Accepted as sent: stored, and readable back through /api/v1/events.
@pytest.mark.parametrize("path", ["/v1/track", "/v1/batch"])
def test_nul_characters_are_stored_and_read_back(inproc: InProcess, path: str) -> None:
    mid = f"nul-{path[4:]}"
    element = (
        b'{"type":"track","userId":"u\\u0000ser","event":"a\\u0000b","messageId":"%s",'
        b'"properties":{"k\\u0000":"v\\u0000"}}' % mid.encode()
    )
    assert send(inproc, path, element) == (200, "ok")
    [event] = inproc.events(message_id=mid)
    assert event["event"] == "a\x00b"
    assert event["userId"] == "u\x00ser"
    assert event["properties"] == {"k\x00": "v\x00"}
    assert_still_serving(inproc)


@pytest.mark.parametrize("path", ["/v1/track", "/v1/batch"])
def test_integer_beyond_64_bits_is_stored_and_read_back(inproc: InProcess, path: str) -> None:
    mid = f"bigint-{path[4:]}"
    element = track(properties=b'{"big":%d,"neg":%d}' % (10**30, -(10**30)), message_id=mid)
    assert send(inproc, path, element) == (200, "ok")
    [event] = inproc.events(message_id=mid)
    assert event["properties"] == {"big": 10**30, "neg": -(10**30)}
    assert_still_serving(inproc)


@pytest.mark.parametrize("path", ["/v1/track", "/v1/batch"])
def test_long_event_name_under_the_event_limit_is_stored(inproc: InProcess, path: str) -> None:
    mid = f"long-{path[4:]}"
    name = "e" * 30_000
    element = track(b'"%s"' % name.encode(), message_id=mid)
    assert send(inproc, path, element) == (200, "ok")
    [event] = inproc.events(message_id=mid)
    assert event["event"] == name
    assert_still_serving(inproc)


@pytest.mark.parametrize("depth", [100, 1000])
@pytest.mark.parametrize("path", ["/v1/track", "/v1/batch"])
def test_deep_nesting_under_the_size_limits_is_stored(
    inproc: InProcess, path: str, depth: int
) -> None:
    mid = f"deep-{depth}-{path[4:]}"
    value = nested(depth)
    objects = b'{"a":' * depth + b"1" + b"}" * depth
    element = track(properties=b'{"list":%s,"object":%s}' % (value, objects), message_id=mid)
    assert len(element) < MAX_EVENT
    assert send(inproc, path, element) == (200, "ok")
    raw = stored_raw(inproc, mid)
    assert raw.count(b'"messageId":"%s"' % mid.encode()) == 1
    assert b'"properties":{"list":%s,"object":%s}' % (value, objects) in raw
    assert_still_serving(inproc)


def rejection_of(inproc: InProcess, message_id: str) -> list[dict[str, Any]]:
    return [row for row in inproc.rejections() if message_id in json.dumps(row["payload"])]


@pytest.mark.parametrize(
    ("name", "size"),
    [("40k", 40_000), ("400k", 400_000)],
)
def test_oversize_event_name_in_a_batch_rejects_only_that_event(
    inproc: InProcess, name: str, size: int
) -> None:
    mid, sibling = f"huge-name-{name}", f"sibling-of-{name}"
    body = batch(track(b'"%s"' % (b"e" * size), message_id=mid), track(message_id=sibling))
    assert len(body) <= MAX_REQUEST
    assert answer(inproc.client.post("/v1/batch", content=body, headers=AUTH)) == (200, "ok")
    assert [event["messageId"] for event in inproc.events(message_id=sibling)] == [sibling]
    assert inproc.events(message_id=mid) == []
    assert [row["code"] for row in rejection_of(inproc, mid)] == ["message_too_large"]
    assert_still_serving(inproc)


@pytest.mark.parametrize(
    "number",
    [
        pytest.param(b"1e400", id="1e400"),
        pytest.param(b"-1e400", id="minus-1e400"),
        pytest.param(b"9" * 5000, id="5000-digit-int"),
    ],
)
def test_unrepresentable_number_in_a_batch_is_refused_clearly(
    inproc: InProcess, number: bytes
) -> None:
    """The single-event path answers 400 invalid_json (see HOSTILE). In a batch either answer
    is clear: 400 invalid_json for the request, or 200 with that one message rejected (a
    rejection row) and its siblings stored. Never a 500, and never a processor that stops."""
    mid, sibling = "number-bad", "number-sibling"
    body = batch(track(properties=b'{"x":%s}' % number, message_id=mid), track(message_id=sibling))
    response = inproc.client.post("/v1/batch", content=body, headers=AUTH)
    assert answer(response) in {(400, "invalid_json"), (200, "ok")}
    if response.status_code == 200:
        assert [event["messageId"] for event in inproc.events(message_id=sibling)] == [sibling]
        assert inproc.events(message_id=mid) == []
        assert len(rejection_of(inproc, mid)) == 1
    assert_still_serving(inproc)


# The real server: a handful of the worst requests against `mainstem serve`.


def raw_request(
    server: ServerProcess, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, str]:
    """``POST /v1/batch`` over a plain socket, with headers an HTTP client would not send (a
    Content-Length the body never reaches)."""
    conn = h11.Connection(our_role=h11.CLIENT)
    request = h11.Request(
        method="POST", target="/v1/batch", headers=[("Host", "localhost"), *headers]
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(conn.send(request) + conn.send(h11.Data(data=body)))
        status, content = 0, b""
        for _ in range(1000):  # bounded: a response is a handful of events
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                content += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    return answer(httpx.Response(status, content=content))


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_real_server_survives_hostile_requests(server: ServerProcess) -> None:
    hostile: dict[str, Callable[[httpx.Client], tuple[int, str]]] = {
        "gzip-bomb": lambda c: answer(c.post("/v1/batch", content=gzip_bomb(), headers=GZIP)),
        "non-utf8-single": lambda c: answer(c.post("/v1/track", content=track(b'"\xff"'))),
        "non-utf8-batch": lambda c: answer(c.post("/v1/batch", content=batch(track(b'"\xff"')))),
        "deep-100k-single": lambda c: answer(c.post("/v1/track", content=b"[" * 100_000)),
        "deep-100k-in-element-batch": lambda c: answer(
            c.post("/v1/batch", content=batch(track(properties=b'{"x":%s}' % nested(100_000))))
        ),
        "over-512000-chunked": lambda c: answer(
            c.post("/v1/batch", content=chunks(MAX_REQUEST + 1))
        ),
        "huge-content-length": lambda c: raw_request(
            server, [("Content-Length", "1000000000000"), *AUTH.items()], b'{"batch":['
        ),
    }
    expected = {
        "gzip-bomb": (400, "payload_too_large"),
        "non-utf8-single": (400, "invalid_json"),
        "non-utf8-batch": (400, "invalid_json"),
        "deep-100k-single": (400, "invalid_json"),
        "deep-100k-in-element-batch": (400, "invalid_json"),
        "over-512000-chunked": (400, "payload_too_large"),
        "huge-content-length": (400, "payload_too_large"),
    }
    seen: dict[str, Any] = {}
    alive: list[str] = []
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        for name, send in hostile.items():
            try:
                seen[name] = send(client)
            except httpx.TransportError as exc:  # the server dropped the connection
                seen[name] = (0, f"<{type(exc).__name__}>")
            mid = f"alive-after-{name}"
            assert answer(client.post("/v1/track", content=track(message_id=mid))) == (200, "ok"), (
                f"not serving after {name}"
            )
            alive.append(mid)

    assert server.process is not None
    seen["process running"] = server.process.poll() is None
    health = httpx.get(f"{server.url}/health", timeout=5)
    seen["health"] = (health.status_code, health.json().get("status"))

    def lag() -> int:
        report: dict[str, Any] = httpx.get(f"{server.url}/health", timeout=5).json()
        return int(report.get("log_lag", -1))

    # A processor that cannot get past a request the gateway accepted retries it forever.
    seen["processor caught up within 15s"] = wait_for(lambda: lag() == 0, 15)
    seen["log_lag"] = lag()
    stored = []
    for mid in alive:
        response = httpx.get(
            f"{server.url}/api/v1/events", params={"message_id": mid}, headers=ADMIN, timeout=5
        )
        assert response.status_code == 200, response.text
        stored += [item["message"]["messageId"] for item in response.json()["data"]]
    seen["valid events stored"] = stored
    # Everything at once, so one diff shows every problem (see the server log in tmp_path).
    assert seen == {
        **expected,
        "process running": True,
        "health": (200, "ok"),
        "processor caught up within 15s": True,
        "log_lag": 0,
        "valid events stored": alive,
    }
