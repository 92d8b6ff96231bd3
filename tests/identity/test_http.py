"""The Profile API on the server, compared field by field with Segment's shapes (reference §4)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mainstem.identity.resolver import Resolver
from mainstem.identity.sqlite import SqliteProfileStore

from ..conftest import ADMIN_TOKEN, WRITE_KEY, InProcess
from .helpers import message

BASE = "/v1/spaces/main/collections/users/profiles"
AUTH = (ADMIN_TOKEN, "")


@pytest.fixture
def world(inproc: InProcess) -> Iterator[InProcess]:
    batch = [
        message("page", 1, 0, anonymousId="a1", name="Home", properties={"path": "/"}),
        message(
            "identify",
            2,
            1,
            anonymousId="a1",
            userId="u1",
            traits={"email": "Ann@X.com", "plan": "pro", "age": 40},
        ),
        message("track", 3, 2, userId="u1", event="Bought", properties={"total": 9}),
        message("group", 4, 3, userId="u1", groupId="g1", traits={"name": "Initech"}),
    ]
    response = inproc.client.post("/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert response.status_code == 200, response.text
    inproc.process()
    assert inproc.app.store is not None
    profiles = SqliteProfileStore(inproc.app.data.root / "profiles.db", fsync=False)
    try:
        assert Resolver(inproc.app.store, profiles).sync() == 4
    finally:
        profiles.close()
    yield inproc


def get(world: InProcess, path: str, **params: Any) -> Any:
    response = world.client.get(path, params=params, auth=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["request-id"]
    return response.json()


def _segment_id(world: InProcess) -> str:
    data = get(world, f"{BASE}/user_id:u1/events", limit=1)["data"]
    segment_id: str = data[0]["related"]["users"]
    return segment_id


def test_traits(world: InProcess) -> None:
    body = get(world, f"{BASE}/user_id:u1/traits")
    assert body == {
        "traits": {"age": 40, "email": "Ann@X.com", "plan": "pro"},
        "cursor": {
            "url": f"{BASE}/user_id:u1/traits",
            "has_more": False,
            "next": "",
            "limit": 10,
        },
    }
    page = get(world, f"{BASE}/email:ann@x.com/traits", limit=2, include="plan,age,nope")
    assert page["traits"] == {"age": 40, "plan": "pro"}
    first = get(world, f"{BASE}/user_id:u1/traits", limit=2)
    assert (first["traits"], first["cursor"]["has_more"], first["cursor"]["next"]) == (
        {"age": 40, "email": "Ann@X.com"},
        True,
        "2",
    )
    second = get(world, f"{BASE}/user_id:u1/traits", limit=2, next="2")
    assert second["traits"] == {"plan": "pro"}
    verbose = get(world, f"{BASE}/anonymous_id:a1/traits", verbose="true", include="plan")
    assert verbose["traits"] == {
        "plan": {"value": "pro", "source_id": "web", "updated_at": "2024-05-01T10:01:00.000Z"}
    }


def test_external_ids(world: InProcess) -> None:
    body = get(world, f"{BASE}/user_id:u1/external_ids", verbose="true")
    assert body["cursor"] == {
        "url": f"{BASE}/user_id:u1/external_ids",
        "has_more": False,
        "next": "",
    }
    assert body["data"] == [
        {
            "source_id": "web",
            "collection": "users",
            "id": "ann@x.com",
            "type": "email",
            "created_at": "2024-05-01T10:01:00.000Z",
            "encoding": "none",
            "first_message_id": "m2",
        },
        {
            "source_id": "web",
            "collection": "users",
            "id": "u1",
            "type": "user_id",
            "created_at": "2024-05-01T10:01:00.000Z",
            "encoding": "none",
            "first_message_id": "m2",
        },
        {
            "source_id": "web",
            "collection": "users",
            "id": "a1",
            "type": "anonymous_id",
            "created_at": "2024-05-01T10:00:00.000Z",
            "encoding": "none",
            "first_message_id": "m1",
        },
    ]
    only = get(world, f"{BASE}/user_id:u1/external_ids", include="user_id")
    assert [(d["type"], d["id"]) for d in only["data"]] == [("user_id", "u1")]


def test_events_newest_first_with_a_cursor(world: InProcess) -> None:
    segment_id = _segment_id(world)
    first = get(world, f"{BASE}/user_id:u1/events", limit=2)
    assert [(e["type"], e["message_id"]) for e in first["data"]] == [
        ("group", "m4"),
        ("track", "m3"),
    ]
    track = first["data"][1]
    assert sorted(track) == sorted(
        [
            "external_ids",
            "context",
            "type",
            "message_id",
            "source_id",
            "timestamp",
            "properties",
            "event",
            "related",
        ]
    )
    assert track["external_ids"] == [
        {"collection": "users", "type": "user_id", "id": "u1", "encoding": "none"}
    ]
    assert (track["event"], track["properties"], track["source_id"], track["timestamp"]) == (
        "Bought",
        {"total": 9},
        "web",
        "2024-05-01T10:02:00.000Z",
    )
    assert track["related"] == {"users": segment_id}
    assert first["cursor"]["has_more"] is True
    second = get(world, f"{BASE}/user_id:u1/events", limit=2, next=first["cursor"]["next"])
    assert [e["message_id"] for e in second["data"]] == ["m2", "m1"]
    assert second["cursor"] == {"url": f"{BASE}/user_id:u1/events", "has_more": False, "next": ""}
    named = get(world, f"{BASE}/user_id:u1/events", include="Bought,Home")
    assert [e["message_id"] for e in named["data"]] == ["m3", "m1"]
    by_segment_id = get(world, f"{BASE}/{segment_id}/events", exclude="Bought")
    assert [e["message_id"] for e in by_segment_id["data"]] == ["m4", "m2", "m1"]


def test_metadata(world: InProcess) -> None:
    assert get(world, f"{BASE}/user_id:u1/metadata") == {
        "metadata": {
            "created_at": "2024-05-01T10:00:00.000Z",
            "updated_at": "2024-05-01T10:03:00.000Z",
            "expires_at": None,
            "first_message_id": "m1",
            "first_source_id": "web",
            "last_message_id": "m4",
            "last_source_id": "web",
        }
    }


def test_links_and_the_account_collection(world: InProcess) -> None:
    assert get(world, f"{BASE}/user_id:u1/links") == {
        "data": [
            {
                "to_collection": "accounts",
                "external_ids": [
                    {
                        "source_id": "web",
                        "collection": "accounts",
                        "id": "g1",
                        "type": "group_id",
                        "created_at": "2024-05-01T10:03:00.000Z",
                        "encoding": "none",
                    }
                ],
            }
        ]
    }
    accounts = "/v1/spaces/main/collections/accounts/profiles/group_id:g1"
    assert get(world, f"{accounts}/traits")["traits"] == {"name": "Initech"}
    [link] = get(world, f"{accounts}/links")["data"]
    assert link["to_collection"] == "users"


def test_an_unknown_profile_is_404(world: InProcess) -> None:
    for path in (
        f"{BASE}/user_id:nobody/traits",
        f"{BASE}/use_unknown/metadata",
        "/v1/spaces/main/collections/accounts/profiles/user_id:u1/traits",
    ):
        response = world.client.get(path, auth=AUTH)
        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "not_found", "message": "Profile was not found."}
        }


def test_a_bad_token_is_401(world: InProcess) -> None:
    wrong = world.client.get(f"{BASE}/user_id:u1/traits", auth=("nope", ""))
    assert wrong.status_code == 401
    assert wrong.json() == {
        "error": {
            "code": "authentication_error",
            "message": "wrong access token — use admin_token from mainstem.yaml",
        }
    }
    missing = world.client.get(f"{BASE}/user_id:u1/traits")
    assert missing.status_code == 401
    assert missing.json()["error"]["message"] == (
        "missing access token — send HTTP Basic auth with the admin_token from mainstem.yaml "
        "as the username and an empty password"
    )


def test_bad_parameters_are_400(world: InProcess) -> None:
    response = world.client.get(f"{BASE}/user_id:u1/traits", params={"limit": 500}, auth=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    cursor = world.client.get(f"{BASE}/user_id:u1/traits", params={"next": "x"}, auth=AUTH)
    assert cursor.status_code == 400
    assert cursor.json() == {
        "error": {
            "code": "invalid_request_error",
            "message": "next='x' is not a cursor — pass back cursor.next of the previous page",
        }
    }


# --- Delete Profile Identifier (reference §3.9) ------------------------------------------------


def delete_ids(world: InProcess, profile: str, body: Any) -> Any:
    return world.client.post(f"{BASE}/{profile}/external_ids/delete", json=body, auth=AUTH)


def test_delete_identifier_takes_it_off_and_keeps_traits_and_events(world: InProcess) -> None:
    response = delete_ids(
        world, "user_id:u1", {"delete_external_ids": [{"id": "a1", "type": "anonymous_id"}]}
    )
    assert response.status_code == 200, response.text
    segment_id = _segment_id(world)
    assert response.json() == {
        "segment_id": segment_id,
        "deleted_external_ids": [{"id": "a1", "type": "anonymous_id"}],
    }
    ids = get(world, f"{BASE}/user_id:u1/external_ids")["data"]
    assert sorted((i["type"], i["id"]) for i in ids) == [("email", "ann@x.com"), ("user_id", "u1")]
    assert get(world, f"{BASE}/user_id:u1/traits")["traits"]["plan"] == "pro"
    assert len(get(world, f"{BASE}/user_id:u1/events")["data"]) == 4
    missing = world.client.get(f"{BASE}/anonymous_id:a1/traits", auth=AUTH)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("profile", "body", "status", "code", "message"),
    [
        (
            "user_id:u1",
            {"delete_external_ids": [{"id": "u1", "type": "user_id"}]},
            400,
            "bad_request",
            "user_id:u1 is the last user_id of {sid} and cannot be deleted",
        ),
        (
            "user_id:u1",
            {"delete_external_ids": [{"id": "g1", "type": "group_id"}]},
            400,
            "unsupported_eid_type",
            "group_id identifiers cannot be deleted — they key account profiles",
        ),
        (
            "user_id:u1",
            {"delete_external_ids": [{"id": "zed", "type": "email"}]},
            404,
            "eid_not_found",
            "{sid} has no identifier email:zed",
        ),
        (
            "user_id:u1",
            {
                "delete_external_ids": [
                    {"id": "a1", "type": "anonymous_id"},
                    {"id": "ann@x.com", "type": "email"},
                ]
            },
            400,
            "bad_request",
            'send {"delete_external_ids": [{"id": "...", "type": "..."}]} with exactly one '
            "identifier",
        ),
        (
            "user_id:nobody",
            {"delete_external_ids": [{"id": "a1", "type": "anonymous_id"}]},
            404,
            "not_found",
            "no profile has 'user_id:nobody'",
        ),
    ],
)
def test_delete_identifier_errors(
    world: InProcess, profile: str, body: Any, status: int, code: str, message: str
) -> None:
    sid = _segment_id(world)
    response = delete_ids(world, profile, body)
    assert response.status_code == status, response.text
    assert response.json() == {"error": {"code": code, "message": message.replace("{sid}", sid)}}


def test_identifiers_of_accounts_cannot_be_deleted(world: InProcess) -> None:
    response = world.client.post(
        "/v1/spaces/main/collections/accounts/profiles/group_id:g1/external_ids/delete",
        json={"delete_external_ids": [{"id": "g1", "type": "group_id"}]},
        auth=AUTH,
    )
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "identifiers can be deleted from users profiles only — account profiles "
            "are keyed by their group_id",
        }
    }


def test_delete_identifier_needs_the_access_token(world: InProcess) -> None:
    response = world.client.post(
        f"{BASE}/user_id:u1/external_ids/delete",
        json={"delete_external_ids": [{"id": "a1", "type": "anonymous_id"}]},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_error"


def test_a_later_event_with_a_deleted_identifier_starts_a_new_profile(world: InProcess) -> None:
    body = {"delete_external_ids": [{"id": "a1", "type": "anonymous_id"}]}
    assert delete_ids(world, "user_id:u1", body).status_code == 200
    batch = [message("page", 9, 9, anonymousId="a1", name="Back")]
    response = world.client.post("/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert response.status_code == 200, response.text
    world.process()
    assert world.app.store is not None
    profiles = SqliteProfileStore(world.app.data.root / "profiles.db", fsync=False)
    try:
        assert Resolver(world.app.store, profiles).sync() == 1
    finally:
        profiles.close()
    fresh = get(world, f"{BASE}/anonymous_id:a1/external_ids")["data"]
    assert [(i["type"], i["id"]) for i in fresh] == [("anonymous_id", "a1")]
    assert get(world, f"{BASE}/anonymous_id:a1/events")["data"][0]["related"]["users"] != (
        _segment_id(world)
    )
