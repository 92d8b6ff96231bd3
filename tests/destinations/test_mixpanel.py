"""Mixpanel through a real courier against a loopback Import / Engage / Groups API that
enforces Mixpanel's documented format and auth."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mainstem.destinations.spec import Destination
from mainstem.secret import Secret
from tests.destinations.conftest import Pipeline
from tests.destinations.vendors import (
    BURST,
    TIME_MS,
    Call,
    Refusal,
    Start,
    Vendor,
    basic_user,
    deliver,
    destination,
    flaky,
    stamped,
)

TOKEN = "mp-project-token"
_INSERT_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_PLACEHOLDERS = {"anon", "anonymous", "nil", "none", "null", "n/a", "undefined", ""}
_OPERATIONS = {
    "/engage": {"$set", "$set_once", "$add", "$union", "$append", "$remove", "$unset", "$delete"},
    "/groups": {"$set", "$set_once", "$union", "$remove", "$unset", "$delete"},
}
_UPDATE_FIELDS = {"$token", "$distinct_id", "$group_key", "$group_id", "$ip", "$ignore_time"}
_TRANSACTION_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def mixpanel(call: Call) -> bytes:
    """What api.mixpanel.com accepts (Import API with strict=1, Engage, Groups)."""
    body = call.body
    if call.path == "/import":
        user, password = basic_user(call.headers)
        if (user, password) != (TOKEN, ""):
            raise Refusal(401, "Invalid credentials")
        if call.query.get("strict") != "1":
            raise Refusal(400, "strict=1 expected")
        if not isinstance(body, list) or not 1 <= len(body) <= 2000:
            raise Refusal(400, "1 to 2000 events per request")
        failed = [index for index, event in enumerate(body) if not _valid_event(event)]
        if failed:
            raise Refusal(400, f"failed_records {failed}")
        return json.dumps({"code": 200, "num_records_imported": len(body), "status": "OK"}).encode()
    if call.path in {"/engage", "/groups"}:
        if call.query.get("verbose") != "1" or not isinstance(body, list) or len(body) > 2000:
            raise Refusal(400, "verbose array of at most 2000 updates")
        for update in body:
            if update.get("$token") != TOKEN:
                raise Refusal(200, "bad $token", b'{"status":0,"error":"Invalid token"}')
            key = "$distinct_id" if call.path == "/engage" else "$group_id"
            if not isinstance(update.get(key), str):
                raise Refusal(200, f"no {key}", b'{"status":0,"error":"missing id"}')
            problem = _update_problem(call.path, update)
            if problem is not None:
                raise Refusal(200, problem, b'{"status":0,"error":"invalid update"}')
        return b'{"status":1,"error":null}'
    raise Refusal(404, f"no route {call.path}")


def _update_problem(path: str, update: dict[str, Any]) -> str | None:
    """Why Mixpanel would reject one profile or group update: each takes exactly one
    operation, whose value is an object; a ``$transactions`` entry is ``{"$time":
    "YYYY-MM-DDTHH:MM:SS", "$amount": number}``."""
    operations = [key for key in update if key not in _UPDATE_FIELDS]
    if len(operations) != 1 or operations[0] not in _OPERATIONS[path]:
        return f"one operation per update, got {operations}"
    value = update[operations[0]]
    if operations[0] != "$delete" and not isinstance(value, dict):
        return f"{operations[0]} takes an object"
    if operations[0] == "$append" and "$transactions" in value:
        entry = value["$transactions"]
        if not isinstance(entry, dict) or set(entry) != {"$time", "$amount"}:
            return "$transactions entry is {$time, $amount}"
        amount = entry["$amount"]
        if not isinstance(amount, int | float) or isinstance(amount, bool):
            return "$transactions $amount is a number"
        if not isinstance(entry["$time"], str) or not _TRANSACTION_TIME.match(entry["$time"]):
            return "$transactions $time is YYYY-MM-DDTHH:MM:SS"
    return None


def _valid_event(event: Any) -> bool:
    props = event.get("properties") if isinstance(event, dict) else None
    if not isinstance(props, dict) or not isinstance(event.get("event"), str):
        return False
    if not isinstance(props.get("time"), int) or not _INSERT_ID.match(props.get("$insert_id", "")):
        return False
    if event["event"] == "$merge":
        return isinstance(props.get("$distinct_ids"), list)
    distinct = props.get("distinct_id")
    return isinstance(distinct, str) and distinct.lower() not in _PLACEHOLDERS


def mixpanel_destination(url: str, **options: Any) -> Destination:
    settings = {"token": Secret(TOKEN), "group_key": "company_id"} | options
    return destination("mixpanel", url, settings)


CONTEXT = {
    "ip": "203.0.113.9",
    "page": {"url": "https://shop.example/cart", "referrer": "https://ref.example/"},
    "os": {"name": "iOS", "version": "17.1"},
    "campaign": {"source": "news", "medium": "email", "name": "spring"},
}

CASES: list[tuple[str, list[dict[str, Any]], list[tuple[str, Any]]]] = [
    (
        "track: distinct_id from userId, $device_id, context properties, $insert_id; revenue "
        "also appended to the profile's $transactions",
        [
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "user-1",
                "anonymousId": "anon-1",
                "properties": {"revenue": 12.5, "currency": "EUR"},
                "context": CONTEXT,
            }
        ],
        [
            (
                "/import",
                [
                    {
                        "event": "Order Completed",
                        "properties": {
                            "$current_url": "https://shop.example/cart",
                            "$referrer": "https://ref.example/",
                            "$os": "iOS",
                            "$os_version": "17.1",
                            "ip": "203.0.113.9",
                            "utm_source": "news",
                            "utm_medium": "email",
                            "utm_campaign": "spring",
                            "revenue": 12.5,
                            "currency": "EUR",
                            "time": TIME_MS,
                            "distinct_id": "user-1",
                            "$insert_id": "msg-0",
                            "$user_id": "user-1",
                            "$device_id": "anon-1",
                            "mp_lib": "mainstem",
                        },
                    }
                ],
            ),
            (
                "/engage",
                [
                    {
                        "$token": TOKEN,
                        "$distinct_id": "user-1",
                        "$append": {
                            "$transactions": {"$time": "2026-03-04T05:06:07", "$amount": 12.5}
                        },
                        "$ip": "203.0.113.9",
                    }
                ],
            ),
        ],
    ),
    (
        "page and screen: Loaded a Page / Loaded a Screen; anonymous distinct_id",
        [
            {
                "type": "page",
                "anonymousId": "anon-2",
                "name": "Pricing",
                "category": "Docs",
                "properties": {"path": "/pricing"},
            },
            {"type": "screen", "anonymousId": "anon-2", "name": "Home"},
        ],
        [
            (
                "/import",
                [
                    {
                        "event": "Loaded a Page",
                        "properties": {
                            "name": "Pricing",
                            "category": "Docs",
                            "path": "/pricing",
                            "time": TIME_MS,
                            "distinct_id": "anon-2",
                            "$insert_id": "msg-0",
                            "$device_id": "anon-2",
                            "mp_lib": "mainstem",
                        },
                    },
                    {
                        "event": "Loaded a Screen",
                        "properties": {
                            "name": "Home",
                            "time": TIME_MS,
                            "distinct_id": "anon-2",
                            "$insert_id": "msg-1",
                            "$device_id": "anon-2",
                            "mp_lib": "mainstem",
                        },
                    },
                ],
            )
        ],
    ),
    (
        "identify: $set with reserved profile properties, $ip, $ignore_time",
        [
            {
                "type": "identify",
                "userId": "user-3",
                "traits": {
                    "email": "ada@example.com",
                    "first_name": "Ada",
                    "lastName": "Lovelace",
                    "createdAt": "2020-01-01T00:00:00Z",
                    "plan": "pro",
                },
                "context": {"ip": "198.51.100.4", "active": False},
            }
        ],
        [
            (
                "/engage",
                [
                    {
                        "$token": TOKEN,
                        "$distinct_id": "user-3",
                        "$set": {
                            "$email": "ada@example.com",
                            "$first_name": "Ada",
                            "$last_name": "Lovelace",
                            "$created": "2020-01-01T00:00:00Z",
                            "plan": "pro",
                        },
                        "$ip": "198.51.100.4",
                        "$ignore_time": True,
                    }
                ],
            )
        ],
    ),
    (
        "alias: an imported $merge of previousId and userId",
        [{"type": "alias", "previousId": "anon-4", "userId": "user-4"}],
        [
            (
                "/import",
                [
                    {
                        "event": "$merge",
                        "properties": {
                            "$distinct_ids": ["anon-4", "user-4"],
                            "time": TIME_MS,
                            "$insert_id": "msg-0",
                        },
                    }
                ],
            )
        ],
    ),
    (
        "group: group profile $set, and $union of the group into the user's profile",
        [{"type": "group", "userId": "user-5", "groupId": "acme", "traits": {"plan": "team"}}],
        [
            (
                "/engage",
                [{"$token": TOKEN, "$distinct_id": "user-5", "$union": {"company_id": ["acme"]}}],
            ),
            (
                "/groups",
                [
                    {
                        "$token": TOKEN,
                        "$group_key": "company_id",
                        "$group_id": "acme",
                        "$set": {"plan": "team"},
                    }
                ],
            ),
        ],
    ),
]


@pytest.mark.parametrize(
    ("messages", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_mapping_table(
    messages: list[dict[str, Any]],
    expected: list[tuple[str, Any]],
    vendor_server: Start,
    pipeline: Pipeline,
    tmp_path: Path,
) -> None:
    api = vendor_server(Vendor(mixpanel))
    pipeline.send(*stamped(*messages))
    steps, state = deliver(pipeline, mixpanel_destination(api.url), tmp_path)
    state.close()
    assert api.refused == []
    assert steps == ["delivered"]
    assert api.received() == expected


def test_revenue_of_track_calls_goes_to_transactions_in_message_order(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(mixpanel))
    pipeline.send(
        *stamped(
            {"type": "track", "event": "Order Refunded", "anonymousId": "anon-7"}
            | {"properties": {"revenue": -5}},
            {"type": "identify", "userId": "user-8", "traits": {"plan": "pro"}},
            {"type": "track", "event": "Order Completed", "userId": "user-8"}
            | {"properties": {"revenue": "19.99"}, "context": {"active": False}}
            | {"timestamp": "2026-03-05T23:59:59.999+01:00"},
            {"type": "track", "event": "Free Order", "userId": "user-8"}
            | {"properties": {"revenue": 0}},
            {"type": "track", "event": "No Revenue", "userId": "user-8"}
            | {"properties": {"revenue": "n/a", "total": 5}},
            {"type": "page", "userId": "user-8", "properties": {"revenue": 3}},
        )
    )
    steps, state = deliver(pipeline, mixpanel_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    assert [path for path, _ in api.received()] == ["/import", "/engage"]
    assert len(api.bodies("/import")[0]) == 5
    assert api.bodies("/engage") == [
        [
            {
                "$token": TOKEN,
                "$distinct_id": "anon-7",
                "$append": {"$transactions": {"$time": "2026-03-04T05:06:07", "$amount": -5}},
            },
            {"$token": TOKEN, "$distinct_id": "user-8", "$set": {"plan": "pro"}},
            {
                "$token": TOKEN,
                "$distinct_id": "user-8",
                "$append": {"$transactions": {"$time": "2026-03-05T22:59:59", "$amount": 19.99}},
                "$ignore_time": True,
            },
        ]
    ]


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        (
            {"$append": {"$transactions": {"$time": "2026-03-04T05:06:07.890Z", "$amount": 1}}},
            "$transactions $time is YYYY-MM-DDTHH:MM:SS",
        ),
        (
            {"$append": {"$transactions": {"$time": "2026-03-04T05:06:07", "$amount": "1"}}},
            "$transactions $amount is a number",
        ),
        ({"$append": {"$transactions": {"$amount": 1}}}, "$transactions entry is {$time, $amount}"),
        (
            {"$set": {"a": 1}, "$append": {"b": 2}},
            "one operation per update, got ['$set', '$append']",
        ),
    ],
)
def test_the_fake_engage_api_refuses_malformed_updates(update: dict[str, Any], reason: str) -> None:
    body = [{"$token": TOKEN, "$distinct_id": "u"} | update]
    call = Call("/engage", {"verbose": "1"}, {}, body)
    with pytest.raises(Refusal) as refused:
        mixpanel(call)
    assert (refused.value.status, refused.value.reason) == (200, reason)


def test_a_long_message_id_becomes_a_hashed_insert_id(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(mixpanel))
    long_id = "segment-python-" + "x" * 60
    pipeline.send({"type": "track", "event": "E", "userId": "u", "messageId": long_id})
    deliver(pipeline, mixpanel_destination(api.url), tmp_path)[1].close()
    (events,) = api.bodies("/import")
    expected = hashlib.sha256(long_id.encode()).hexdigest()[:32]
    assert events[0]["properties"]["$insert_id"] == expected


def test_a_service_account_authenticates_import_with_project_id(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    def service_account(call: Call) -> bytes:
        if basic_user(call.headers) != ("sa.user", "sa-secret"):
            raise Refusal(401, "Invalid credentials")
        if call.query.get("project_id") != "4242":
            raise Refusal(400, "project_id is required with a service account")
        return b'{"code":200,"num_records_imported":1,"status":"OK"}'

    api = vendor_server(Vendor(service_account))
    pipeline.send(*stamped({"type": "track", "event": "E", "userId": "u"}))
    dest = mixpanel_destination(
        api.url, username="sa.user", secret=Secret("sa-secret"), project_id="4242"
    )
    steps, state = deliver(pipeline, dest, tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])


def test_rate_limits_and_server_errors_are_retried_until_everything_arrived_once(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(mixpanel, flaky(*BURST)))
    ids = pipeline.tracks(120)
    pipeline.send(
        *[
            {"type": "identify", "userId": f"user-{n}", "messageId": f"id-{n}", "traits": {"n": n}}
            for n in range(30)
        ]
    )
    steps, state = deliver(pipeline, mixpanel_destination(api.url), tmp_path)
    assert set(steps) == {"delivered"}
    assert api.refused == []
    imported = [
        event["properties"]["$insert_id"] for body in api.bodies("/import") for event in body
    ]
    profiles = [update["$distinct_id"] for body in api.bodies("/engage") for update in body]
    assert imported == ids  # each once, in order
    assert profiles == [f"user-{n}" for n in range(30)]
    progress = {p.destination: p for p in state.progress()}["mixpanel"]
    assert (progress.delivered, progress.dead, progress.retries) == (150, 0, len(BURST))
    state.close()


def test_a_retry_does_not_resend_the_request_mixpanel_already_accepted(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    # one batch = /import (accepted) then /engage (503 twice): /import is sent once
    api = vendor_server(Vendor(mixpanel, flaky((200, {}), (503, {}), (503, {}))))
    pipeline.send(
        *stamped(
            {"type": "track", "event": "E", "userId": "u1"},
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
        )
    )
    steps, state = deliver(pipeline, mixpanel_destination(api.url), tmp_path)
    state.close()
    assert steps == ["delivered"]
    assert [path for path, _ in api.received()] == ["/import", "/engage"]
    assert api.answered == 4


def test_a_wrong_token_is_final_for_import_and_for_engage_which_says_so_in_a_200(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(mixpanel))
    pipeline.send(
        *stamped(
            {"type": "track", "event": "E", "userId": "u"},
            {"type": "identify", "userId": "u", "traits": {"a": 1}},
        )
    )
    dest = destination(
        "mixpanel", api.url, {"token": Secret("wrong"), "group_key": "company_id"}, batch_size=1
    )
    steps, state = deliver(pipeline, dest, tmp_path)
    assert steps == ["dead", "dead"]
    assert api.refused == ["Invalid credentials", "bad $token"]
    reasons = [letter.reason for letter in state.dead_letters("mixpanel")]
    assert reasons == [
        'discarded: HTTP 401: {"error": "Invalid credentials"}',
        'discarded: HTTP 400: {"status":0,"error":"Invalid token"}',
    ]
    state.close()


def test_messages_without_a_usable_id_are_filtered_with_the_reason(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(mixpanel))
    pipeline.send(
        *stamped(
            {"type": "track", "event": "E", "anonymousId": "null"},
            {"type": "track", "event": "E", "userId": "u"},
        )
    )
    steps, state = deliver(pipeline, mixpanel_destination(api.url), tmp_path)
    assert steps == ["delivered"]
    progress = {p.destination: p for p in state.progress()}["mixpanel"]
    state.close()
    assert (progress.delivered, progress.filtered) == (1, 1)
    assert [event["properties"]["distinct_id"] for event in api.bodies("/import")[0]] == ["u"]
