"""The Tracking API at the HTTP level (reference §1): paths, auth, responses, limits, CORS."""

from __future__ import annotations

import base64
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mainstem import config
from mainstem.app import App
from tests.conftest import ADMIN_TOKEN, DISABLED_KEY, SERVER_KEY, WRITE_KEY, InProcess


def basic(key: str, colon: bool = True) -> dict[str, str]:
    token = base64.b64encode(f"{key}{':' if colon else ''}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": "Clicked", **fields}


def post(inproc: InProcess, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return inproc.client.post(path, content=data, headers=headers or {})


SINGLE_PATHS = [
    ("/v1/identify", "identify", {"traits": {"a": 1}}),
    ("/v1/track", "track", {"event": "E"}),
    ("/v1/page", "page", {"name": "Home"}),
    ("/v1/screen", "screen", {"name": "Main"}),
    ("/v1/group", "group", {"groupId": "g"}),
    ("/v1/alias", "alias", {"previousId": "p"}),
    ("/v1/i", "identify", {}),
    ("/v1/t", "track", {"event": "E"}),
    ("/v1/p", "page", {}),
    ("/v1/s", "screen", {}),
    ("/v1/g", "group", {"groupId": "g"}),
    ("/v1/a", "alias", {}),
]


@pytest.mark.parametrize(("path", "kind", "fields"), SINGLE_PATHS)
def test_single_event_paths(
    inproc: InProcess, path: str, kind: str, fields: dict[str, Any]
) -> None:
    response = post(inproc, path, {"writeKey": WRITE_KEY, "userId": "u1", **fields})
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert response.headers["content-type"] == "application/json"
    [stored] = inproc.events()
    assert stored["type"] == kind
    client = len(path) == len("/v1/x")
    assert stored["channel"] == ("browser" if client else "server")
    assert stored["context"].get("ip") == ("203.0.113.7" if client else None)


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import", "/v1/b"])
def test_batch_paths_accept_all_six_types(inproc: InProcess, path: str) -> None:
    batch = [{"type": kind, "userId": "u1", **fields} for _, kind, fields in SINGLE_PATHS[:6]]
    response = post(inproc, path, {"batch": batch, "writeKey": WRITE_KEY})
    assert response.status_code == 200 and response.json() == {"success": True}
    stored = inproc.events()
    assert sorted(m["type"] for m in stored) == sorted(k for _, k, _ in SINGLE_PATHS[:6])
    assert len({m["receivedAt"] for m in stored}) == 1  # one receivedAt per request (§1.5)


@pytest.mark.parametrize(
    ("headers", "body_key", "event_key"),
    [
        (basic(WRITE_KEY), None, None),  # python ≤2.2, ruby, go, node ≥3.1
        (basic(WRITE_KEY, colon=False), None, None),  # "might work for backward compatibility"
        ({}, WRITE_KEY, None),  # python ≥2.3, node 2.x–3.0
        ({}, None, WRITE_KEY),  # analytics.js ≤1.83: per-event key
        ({"Authorization": "Bearer some-oauth-token"}, WRITE_KEY, None),  # OAuth + body
        (basic(WRITE_KEY), "wrong-key-ignored", None),  # Basic is looked at first
    ],
)
def test_write_key_forms(
    inproc: InProcess, headers: dict[str, str], body_key: str | None, event_key: str | None
) -> None:
    body: dict[str, Any] = {"batch": [track(**({"writeKey": event_key} if event_key else {}))]}
    if body_key:
        body["writeKey"] = body_key
    response = post(inproc, "/v1/batch", body, headers)
    assert response.status_code == 200, response.text
    [stored] = inproc.events()
    assert "writeKey" not in stored


@pytest.mark.parametrize(
    ("headers", "body", "code", "message"),
    [
        (
            {},
            {"batch": [track()]},
            "project_not_found",
            'no write key — send it as the Basic auth username or as "writeKey" in the body',
        ),
        (
            basic("not-a-key"),
            {"batch": [track()]},
            "project_not_found",
            "unknown write key — check the key against mainstem.yaml (`mainstem config check` "
            "lists the sources)",
        ),
        (
            basic(DISABLED_KEY),
            {"batch": [track()]},
            "source_disabled",
            "source 'old' is disabled — set `enabled: true` in mainstem.yaml to accept its events",
        ),
    ],
)
def test_bad_write_key_is_401(
    inproc: InProcess, headers: dict[str, str], body: Any, code: str, message: str
) -> None:
    response = post(inproc, "/v1/batch", body, headers)
    assert response.status_code == 401
    assert response.json() == {"success": False, "code": code, "message": message, "error": message}
    assert inproc.events() == []


def test_content_type_is_ignored(inproc: InProcess) -> None:
    for content_type in ("text/plain", "application/json; charset=utf-8", "x/garbage"):
        response = post(
            inproc, "/v1/t", {"writeKey": WRITE_KEY, **track()}, {"Content-Type": content_type}
        )
        assert response.status_code == 200
    assert len(inproc.events()) == 3


def test_gzip_body(inproc: InProcess) -> None:
    body = gzip.compress(json.dumps({"batch": [track(), track(event="Two")]}).encode())
    response = post(inproc, "/v1/batch", body, {"Content-Encoding": "gzip", **basic(WRITE_KEY)})
    assert response.status_code == 200
    assert sorted(m["event"] for m in inproc.events()) == ["Clicked", "Two"]


# Each row of reference §1.7 that our gateway answers itself.
@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/batch", b"{not json", 400, "invalid_json"),
        ("/v1/track", b"{not json", 400, "invalid_json"),
        ("/v1/batch", b"[1, 2]", 400, "invalid_json"),
        ("/v1/batch", b'{"writeKey": "x"}', 400, "batch_missing"),
        ("/v1/track", b"[]", 400, "message_not_object"),
        (
            "/v1/track",
            json.dumps({"writeKey": WRITE_KEY, "event": "E"}).encode(),
            400,
            "no_user_anon_id",
        ),
        (
            "/v1/track",
            json.dumps({"writeKey": WRITE_KEY, "userId": "u"}).encode(),
            400,
            "event_not_defined",
        ),
        (
            "/v1/track",
            json.dumps({"writeKey": WRITE_KEY, "userId": "u", "event": 1}).encode(),
            400,
            "event_not_string",
        ),
        (
            "/v1/identify",
            json.dumps({"writeKey": WRITE_KEY, "userId": "u", "traits": 1}).encode(),
            400,
            "traits_not_object",
        ),
    ],
)
def test_request_errors(inproc: InProcess, path: str, body: bytes, status: int, code: str) -> None:
    response = post(inproc, path, body, basic(WRITE_KEY) if b"writeKey" not in body else {})
    assert response.status_code == status
    payload = response.json()
    assert payload["success"] is False
    assert payload["code"] == code
    assert payload["message"] and payload["error"] == payload["message"]


def test_batch_discard_codes_are_recorded_and_the_rest_accepted(inproc: InProcess) -> None:
    batch = [
        track(messageId="good-1"),
        {"type": "track", "event": "NoIds"},
        {"type": "track", "userId": "u"},
        {"type": "track", "userId": "u", "event": 3},
        track(properties=[1]),
        {"type": "identify", "userId": "u", "traits": "x"},
        {"type": "page", "userId": "u", "name": ""},
        {"type": "screen", "userId": "u", "category": 5},
        "not an object",
        {"type": "identify", "userId": "u", "messageId": "good-2"},
    ]
    response = post(inproc, "/v1/batch", {"batch": batch}, basic(WRITE_KEY))
    assert response.status_code == 200 and response.json() == {"success": True}
    assert sorted(m["messageId"] for m in inproc.events()) == ["good-1", "good-2"]
    rejections = inproc.rejections()
    assert [r["code"] for r in reversed(rejections)] == [
        "no_user_anon_id",
        "event_not_defined",
        "event_not_string",
        "properties_not_object",
        "traits_not_object",
        "name_not_string",
        "category_not_string",
        "message_not_object",
    ]
    by_code = {r["code"]: r for r in rejections}
    assert by_code["event_not_string"]["payload"] == {"type": "track", "userId": "u", "event": 3}
    assert by_code["event_not_string"]["source_id"] == "web"
    assert by_code["event_not_string"]["reason"] == "event must be a string, got a number (3)"
    metrics = inproc.client.get("/metrics").text
    assert (
        'mainstem_processor_batches_with_rejections_total{code="multi_user_error",'
        'source="web"} 1.0' in metrics
    )
    assert (
        'mainstem_processor_events_rejected_total{code="event_not_string",source="web"} 1.0'
        in metrics
    )


def test_empty_batch_and_all_rejected(inproc: InProcess) -> None:
    assert post(inproc, "/v1/batch", {"batch": []}, basic(WRITE_KEY)).status_code == 200
    assert (
        post(inproc, "/v1/batch", {"batch": [{"type": "track"}]}, basic(WRITE_KEY)).status_code
        == 200
    )
    codes = [r["code"] for r in inproc.rejections()]
    assert codes == ["no_user_anon_id", "empty_batch"]
    metrics = inproc.client.get("/metrics").text
    assert 'code="empty_batch_result",source="web"} 1.0' in metrics


def test_more_than_2500_events_answers_200_and_rejects_the_excess(inproc: InProcess) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "E", "messageId": f"m{i}"} for i in range(2502)
    ]
    response = post(inproc, "/v1/batch", {"batch": batch}, basic(WRITE_KEY))
    assert response.status_code == 200
    assert len(inproc.events(limit=1000)) == 1000
    response = inproc.client.get(
        "/api/v1/events",
        params={"message_id": "m2499"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert len(response.json()["data"]) == 1
    rejections = inproc.rejections()
    assert [r["code"] for r in rejections] == ["batch_too_large"] * 2
    assert {r["payload"]["messageId"] for r in rejections} == {"m2500", "m2501"}


def _event_of_size(size: int, **fields: Any) -> bytes:
    """A compact single-event body of exactly ``size`` bytes."""
    base = fields or {"writeKey": WRITE_KEY, "userId": "u", "event": "E"}
    base["properties"] = {"pad": ""}
    overhead = len(json.dumps(base, separators=(",", ":")))
    base["properties"]["pad"] = "x" * (size - overhead)
    body = json.dumps(base, separators=(",", ":")).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize(("size", "status"), [(32768, 200), (32769, 400)])
def test_single_event_size_limit_at_the_byte(inproc: InProcess, size: int, status: int) -> None:
    response = post(inproc, "/v1/track", _event_of_size(size))
    assert response.status_code == status
    if status == 400:
        assert response.json()["code"] == "message_too_large"
        assert response.json()["message"] == (
            "the event is 32769 bytes; the limit for one event is 32768 bytes"
        )


def test_pretty_printed_event_is_measured_compact(inproc: InProcess) -> None:
    compact = json.loads(_event_of_size(32768))
    pretty = json.dumps(compact, indent=4).encode()
    assert len(pretty) > 32768
    assert post(inproc, "/v1/track", pretty).status_code == 200


@pytest.mark.parametrize(("size", "status"), [(32768, 200), (32769, 200)])
def test_event_size_limit_inside_a_batch(inproc: InProcess, size: int, status: int) -> None:
    raw = _event_of_size(size, type="track", userId="u", event="E")
    body = b'{"batch":[' + raw + b"]}"
    assert post(inproc, "/v1/batch", body, basic(WRITE_KEY)).status_code == status
    if size <= 32768:
        assert len(inproc.events()) == 1
    else:
        assert inproc.events() == []
        [rejection] = inproc.rejections()
        assert rejection["code"] == "message_too_large"


def _batch_of_size(size: int) -> bytes:
    head, tail = '{"batch":[{"type":"track","userId":"u","event":"E","properties":{"p":"', '"}}]}'
    return (head + "x" * (size - len(head) - len(tail)) + tail).encode()


@pytest.mark.parametrize(("size", "status"), [(512000, 200), (512001, 400)])
def test_request_size_limit_at_the_byte(inproc: InProcess, size: int, status: int) -> None:
    body = _batch_of_size(size)
    assert len(body) == size
    response = post(inproc, "/v1/batch", body, basic(WRITE_KEY))
    assert response.status_code == status
    if status == 400:
        assert response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(("size", "status"), [(512000, 200), (512001, 400)])
def test_request_size_limit_applies_after_gzip(inproc: InProcess, size: int, status: int) -> None:
    compressed = gzip.compress(_batch_of_size(size))
    assert len(compressed) < 10000
    response = post(
        inproc, "/v1/batch", compressed, {"Content-Encoding": "gzip", **basic(WRITE_KEY)}
    )
    assert response.status_code == status
    if status == 400:
        assert response.json() == {
            "success": False,
            "code": "payload_too_large",
            "message": "the decompressed body is over the limit of 512000 bytes — send smaller "
            "batches",
            "error": "the decompressed body is over the limit of 512000 bytes — send smaller "
            "batches",
        }


def test_cors_preflight_and_response_headers(inproc: InProcess) -> None:
    origin = "https://shop.example"
    response = inproc.client.options(
        "/v1/t",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == origin
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == (
        "authorization,content-type,x-retry-count"
    )
    assert response.headers["access-control-allow-credentials"] == "true"
    posted = post(inproc, "/v1/t", {"writeKey": WRITE_KEY, **track()}, {"Origin": origin})
    assert posted.headers["access-control-allow-origin"] == origin
    error = post(inproc, "/v1/t", b"nope", {"Origin": origin})
    assert error.status_code == 400
    assert error.headers["access-control-allow-origin"] == origin


def test_metrics_path_is_accepted_and_discarded(inproc: InProcess) -> None:
    response = post(inproc, "/v1/m", {"series": [{"type": "Counter", "metric": "x", "value": 1}]})
    assert response.status_code == 200
    assert inproc.events() == [] and inproc.rejections() == []


def test_unknown_path_and_wrong_method(inproc: InProcess) -> None:
    response = inproc.client.post("/v1/nope", content=b"{}")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    response = inproc.client.get("/v1/track")
    assert response.status_code == 400
    assert response.json()["code"] == "method_not_allowed"


def test_trailing_slash_is_tolerated(inproc: InProcess) -> None:
    assert post(inproc, "/v1/batch/", {"batch": [track()]}, basic(WRITE_KEY)).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "data="
        + base64.b64encode(
            json.dumps(
                {
                    "writeKey": WRITE_KEY,
                    "userId": "u",
                    "event": "Email Opened",
                    "properties": {"subject": "Hi+there"},
                }
            ).encode()
        ).decode(),
        f"writeKey={WRITE_KEY}&userId=u&event=Email%20Opened&properties.subject=Hi%2Bthere",
    ],
)
def test_pixel(inproc: InProcess, query: str) -> None:
    response = inproc.client.get(f"/v1/pixel/track?{query}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    [stored] = inproc.events()
    assert stored["event"] == "Email Opened"
    assert stored["properties"] == {"subject": "Hi+there"}
    assert stored["channel"] == "browser"


def test_pixel_always_answers_a_gif(inproc: InProcess) -> None:
    for query in ("data=!!!", "writeKey=bad&userId=u&event=E", f"writeKey={WRITE_KEY}"):
        response = inproc.client.get(f"/v1/pixel/track?{query}")
        assert response.status_code == 200 and response.content.startswith(b"GIF89a")
    assert inproc.events() == []
    metrics = inproc.client.get("/metrics").text
    assert 'mainstem_ingest_requests_rejected_total{reason="pixel_invalid"} 1.0' in metrics
    assert 'mainstem_ingest_requests_rejected_total{reason="project_not_found"} 1.0' in metrics
    assert 'mainstem_ingest_requests_rejected_total{reason="no_user_anon_id"} 1.0' in metrics


def test_settings_document_for_analytics_js(inproc: InProcess) -> None:
    response = inproc.client.get(
        f"/v1/projects/{WRITE_KEY}/settings",
        headers={"Host": "cdp.example:8088", "Origin": "https://shop.example"},
    )
    assert response.status_code == 200
    segment = response.json()["integrations"]["Segment.io"]
    assert segment["apiKey"] == WRITE_KEY
    assert segment["apiHost"] == "cdp.example:8088/v1"
    assert segment["protocol"] == "http"
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    missing = inproc.client.get("/v1/projects/nope-nope/settings")
    assert missing.status_code == 401


def test_second_source_is_recorded_on_its_events(inproc: InProcess) -> None:
    post(inproc, "/v1/batch", {"batch": [track()]}, basic(SERVER_KEY))
    post(inproc, "/v1/batch", {"batch": [track()]}, basic(WRITE_KEY))
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    inproc.process()
    data = inproc.client.get(
        "/api/v1/events", params={"source": "backend"}, headers=headers
    ).json()["data"]
    assert [item["source_id"] for item in data] == ["backend"]


def test_metrics_count_requests_and_events(inproc: InProcess) -> None:
    post(inproc, "/v1/batch", {"batch": [track(), track()]}, basic(WRITE_KEY))
    post(inproc, "/v1/batch", {"batch": [track()]}, basic("unknown-key"))
    inproc.process()
    metrics = inproc.client.get("/metrics").text
    assert 'mainstem_ingest_events_accepted_total{source="web"} 2.0' in metrics
    assert 'mainstem_http_requests_total{route="batch",status="200"} 1.0' in metrics
    assert 'mainstem_http_requests_total{route="batch",status="401"} 1.0' in metrics
    assert 'mainstem_processor_events_stored_total{source="web",type="track"} 2.0' in metrics
    assert "mainstem_log_lag 0.0" in metrics
    assert "mainstem_ingest_request_seconds_count 2.0" in metrics


def test_forwarded_for_only_from_trusted_proxies(tmp_path: Path, workspace_file: Path) -> None:
    text = workspace_file.read_text().replace(
        "settings:\n", "settings:\n  trusted_proxies: [203.0.113.0/24]\n"
    )
    workspace_file.write_text(text)
    app = App(config.load(workspace_file), processor="none", reload_interval=0)
    with TestClient(app, client=("203.0.113.7", 1234)) as client:
        harness = InProcess(app, client)
        body = json.dumps({"writeKey": WRITE_KEY, **track()}).encode()
        client.post(
            "/v1/t", content=body, headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.9, 203.0.113.2"}
        )
        [stored] = harness.events()
        assert stored["context"]["ip"] == "198.51.100.9"
        harness.close()
    app = App(config.load(workspace_file), processor="none", reload_interval=0)
    with TestClient(app, client=("192.0.2.50", 1234)) as client:
        harness = InProcess(app, client)
        client.post("/v1/t", content=body, headers={"X-Forwarded-For": "6.6.6.6"})
        assert harness.events()[0]["context"]["ip"] == "192.0.2.50"  # untrusted peer
        harness.close()


def test_backpressure_answers_429_with_retry_after(tmp_path: Path, workspace_file: Path) -> None:
    """While the log cannot commit, queued bytes grow; past max_pending_bytes new requests get
    429 + Retry-After (the SDKs retry), and what was queued is committed once the log frees."""
    import sqlite3
    import threading

    text = workspace_file.read_text().replace(
        "settings:\n", "settings:\n  max_pending_bytes: 150\n"
    )
    workspace_file.write_text(text)
    app = App(config.load(workspace_file), processor="none", reload_interval=0)
    with TestClient(app) as client:
        harness = InProcess(app, client)
        blocker = sqlite3.connect(tmp_path / "data" / "log-0.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # the log writer now waits (busy_timeout)
        body = json.dumps({"batch": [track(messageId="queued")]}).encode()
        assert len(body) > 75
        answers: list[int] = []
        senders = [
            threading.Thread(
                target=lambda: answers.append(
                    client.post("/v1/batch", content=body, headers=basic(WRITE_KEY)).status_code
                )
            )
            for _ in range(2)
        ]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 20
        while app.committer is None or app.committer.pending_bytes < 2 * len(body):
            assert time.monotonic() < deadline, "requests never queued"
            time.sleep(0.01)
        refused = client.post("/v1/batch", content=body, headers=basic(WRITE_KEY))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["x-ratelimit-reset"] == "1"
        assert refused.json()["code"] == "rate_limited"
        blocker.execute("ROLLBACK")
        blocker.close()
        for sender in senders:
            sender.join(30)
        assert answers == [200, 200]
        assert [m["messageId"] for m in harness.events()] == ["queued"]  # deduped copy of two
        harness.close()
