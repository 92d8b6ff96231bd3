"""The suppression endpoints of the admin API (Segment's Regulations API subset), in-process and
against the real server."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from mainstem import timestamps
from tests.conftest import ADMIN_TOKEN, WRITE_KEY, InProcess, ServerProcess, wait_for

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def regulate(inproc: InProcess, kind: str, *ids: object, subject: str = "USER_ID") -> Any:
    return inproc.client.post(
        "/api/v1/regulations",
        json={"regulationType": kind, "subjectType": subject, "subjectIds": list(ids)},
        headers=AUTH,
    )


def test_a_regulation_is_stored_finished_and_listed(inproc: InProcess) -> None:
    before = timestamps.now_us()
    first = regulate(inproc, "SUPPRESS_ONLY", "u1", "u2")
    assert first.status_code == 200, first.text
    regulate_id = first.json()["data"]["regulateId"]
    response = inproc.client.get(f"/api/v1/regulations/{regulate_id}", headers=AUTH)
    assert response.status_code == 200
    regulation = response.json()["data"]["regulation"]
    created = regulation.pop("createdAt")
    assert regulation == {
        "id": regulate_id,
        "workspaceId": "default",
        "overallStatus": "FINISHED",
        "finishedAt": created,
        "regulationType": "SUPPRESS_ONLY",
        "subjectType": "USER_ID",
        "subjectIds": ["u1", "u2"],
        "streamStatus": [],
    }
    assert before // 1000 <= (timestamps.parse(created) or 0) // 1000 <= timestamps.now_us()
    second = regulate(inproc, "UNSUPPRESS", "u2").json()["data"]["regulateId"]
    third = regulate(inproc, "SUPPRESS_ONLY", "u3").json()["data"]["regulateId"]

    page = inproc.client.get("/api/v1/regulations", params={"limit": 2}, headers=AUTH).json()
    assert [r["id"] for r in page["data"]["regulations"]] == [third, second]
    cursor = page["data"]["pagination"]["next_cursor"]
    rest = inproc.client.get(
        "/api/v1/regulations", params={"limit": 2, "cursor": cursor}, headers=AUTH
    ).json()
    assert [r["id"] for r in rest["data"]["regulations"]] == [regulate_id]
    assert rest["data"]["pagination"] == {"next_cursor": None}

    suppressed = inproc.client.get("/api/v1/suppressions", headers=AUTH).json()
    assert suppressed == {
        "data": {
            "suppressed": [{"subjectType": "USER_ID", "subjectIds": ["u1", "u3"]}],
            "pagination": {"next_cursor": None},
        }
    }
    page = inproc.client.get("/api/v1/suppressions", params={"limit": 1}, headers=AUTH).json()
    assert page["data"]["suppressed"][0]["subjectIds"] == ["u1"]
    after = page["data"]["pagination"]["next_cursor"]
    assert after == "u1"
    rest = inproc.client.get(
        "/api/v1/suppressions", params={"limit": 1, "cursor": after}, headers=AUTH
    ).json()
    assert rest["data"]["suppressed"][0]["subjectIds"] == ["u3"]
    assert rest["data"]["pagination"] == {"next_cursor": None}


def test_nothing_suppressed_is_an_empty_list(inproc: InProcess) -> None:
    body = inproc.client.get("/api/v1/suppressions", headers=AUTH).json()
    assert body == {"data": {"suppressed": [], "pagination": {"next_cursor": None}}}
    assert inproc.client.get("/api/v1/regulations", headers=AUTH).json() == {
        "data": {"regulations": [], "pagination": {"next_cursor": None}}
    }


@pytest.mark.parametrize(
    ("kind", "ids", "subject", "message"),
    [
        (
            "SUPPRESS_WITH_DELETE",
            ["u1"],
            "USER_ID",
            "regulationType SUPPRESS_WITH_DELETE is not supported: this version of Mainstem "
            "supports only SUPPRESS_ONLY and UNSUPPRESS (it deletes no data; `mainstem profile "
            "delete` deletes a profile)",
        ),
        (
            "BLOCK",
            ["u1"],
            "USER_ID",
            'regulationType must be SUPPRESS_ONLY or UNSUPPRESS, got "BLOCK"',
        ),
        (
            "SUPPRESS_ONLY",
            ["u1"],
            "OBJECT_ID",
            'subjectType must be USER_ID, got "OBJECT_ID" — suppression matches messages by '
            "userId only (ANONYMOUS_ID and OBJECT_ID are not supported)",
        ),
        (
            "SUPPRESS_ONLY",
            [None],
            "USER_ID",
            "subjectIds[0] must be a non-empty string (a userId), got None",
        ),
    ],
)
def test_an_unsupported_regulation_is_422_and_says_why(
    inproc: InProcess, kind: str, ids: list[object], subject: str, message: str
) -> None:
    response = regulate(inproc, kind, *ids, subject=subject)
    assert response.status_code == 422
    assert response.json() == {"error": {"code": "unprocessable", "message": message}}
    assert (
        inproc.client.get("/api/v1/regulations", headers=AUTH).json()["data"]["regulations"] == []
    )


def test_an_unknown_regulation_is_404(inproc: InProcess) -> None:
    response = inproc.client.get("/api/v1/regulations/nope", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "regulation_not_found",
            "message": "no regulation 'nope' — GET /api/v1/regulations lists them",
        }
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/regulations"),
        ("GET", "/api/v1/regulations"),
        ("GET", "/api/v1/regulations/x"),
        ("GET", "/api/v1/suppressions"),
    ],
)
def test_the_endpoints_need_the_admin_token(inproc: InProcess, method: str, path: str) -> None:
    body = {"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": ["u1"]}
    response = inproc.client.request(method, path, json=body if method == "POST" else None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert inproc.app.store is not None and inproc.app.store.suppressed() == frozenset()


def test_the_in_process_pipeline_drops_what_the_api_suppressed(inproc: InProcess) -> None:
    assert regulate(inproc, "SUPPRESS_ONLY", "gone").status_code == 200
    response = inproc.client.post(
        "/v1/batch",
        json={
            "batch": [
                {"type": "track", "event": "A", "userId": "gone"},
                {"type": "track", "event": "B", "userId": "kept"},
                {"type": "page", "anonymousId": "anon"},
            ]
        },
        auth=(WRITE_KEY, ""),
    )
    assert response.status_code == 200
    stored = inproc.events(after="0")
    assert [(m.get("userId"), m.get("anonymousId")) for m in stored] == [
        ("kept", None),
        (None, "anon"),
    ]
    sources = inproc.client.get("/api/v1/sources", headers=AUTH).json()["data"]
    web = next(source for source in sources if source["id"] == "web")
    assert (web["events_suppressed"], web["events_stored"]) == (1, 2)


def test_the_server_stops_storing_a_suppressed_users_events(server: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {server.admin_token}"}

    def send(*user_ids: str, event: str) -> None:
        batch = [{"type": "track", "event": event, "userId": u} for u in user_ids]
        response = httpx.post(
            f"{server.url}/v1/batch", json={"batch": batch}, auth=(server.write_key, ""), timeout=10
        )
        assert response.status_code == 200

    send("alice", "bob", event="Before")
    server.events(expect=2)
    response = httpx.post(
        f"{server.url}/api/v1/regulations",
        json={"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": ["alice"]},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    time.sleep(1.5)  # the processor reloads the suppressed set about once a second
    send("alice", "bob", event="After")
    wait_for(
        lambda: len(server.events()) == 3 and _suppressed(server) == 1,
        30,
        "bob's second event stored and alice's counted as suppressed",
    )
    stored = [(m["userId"], m["event"]) for m in server.events()]
    assert stored == [("alice", "Before"), ("bob", "Before"), ("bob", "After")]
    assert len(server.events(user_id="alice")) == 1


def _suppressed(server: ServerProcess) -> int:
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    for line in metrics.splitlines():
        if line.startswith('mainstem_processor_events_suppressed_total{source="web"}'):
            return int(float(line.split()[-1]))
    return 0
