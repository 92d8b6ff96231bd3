"""HubSpot through a real courier against a loopback CRM v3 / custom events API that enforces
HubSpot's documented request format, Bearer auth and batch rules."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from mainstem.destinations.integrations import hubspot
from mainstem.destinations.spec import Destination
from mainstem.secret import Secret
from tests.destinations.conftest import Pipeline
from tests.destinations.vendors import (
    BURST,
    Call,
    Refusal,
    Start,
    Vendor,
    deliver,
    destination,
    flaky,
    stamped,
)

TOKEN = "pat-na1-test-token"
EVENTS = {"Order Completed": "pe1234_order_completed", "Signed Up": "pe1234_signed_up"}
CONTACT_PROPERTIES = {
    "email",
    "firstname",
    "lastname",
    "phone",
    "company",
    "website",
    "jobtitle",
    "address",
    "city",
    "state",
    "zip",
    "country",
    "plan",
}
"""The contact properties that exist in the fake portal."""
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def hubspot_api(call: Call) -> bytes:
    """What api.hubapi.com accepts for contact upserts and custom event occurrences."""
    if call.headers.get("authorization") != f"Bearer {TOKEN}":
        raise Refusal(401, "INVALID_AUTHENTICATION")
    inputs = call.body.get("inputs") if isinstance(call.body, dict) else None
    if call.path == "/crm/v3/objects/contacts/batch/upsert":
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= 100:
            raise Refusal(400, "1 to 100 inputs")
        ids = [item.get("id") for item in inputs]
        if len(set(ids)) != len(ids):
            raise Refusal(400, "Duplicate IDs found in batch input")
        for item in inputs:
            if item.get("idProperty") != "email" or "@" not in str(item.get("id")):
                raise Refusal(400, "idProperty email with an email id")
            props = item.get("properties", {})
            unknown = sorted(set(props) - CONTACT_PROPERTIES)
            if unknown:
                raise Refusal(400, f"PROPERTY_DOESNT_EXIST {unknown}")
            if not all(isinstance(value, str) for value in props.values()):
                raise Refusal(400, "property values are strings")
        return b'{"status":"COMPLETE","results":[]}'
    if call.path == "/events/v3/send/batch":
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= 500:
            raise Refusal(400, "1 to 500 inputs")
        for item in inputs:
            if item.get("eventName") not in EVENTS.values():
                raise Refusal(400, f"unknown event {item.get('eventName')!r}")
            if not (item.get("email") or item.get("objectId") or item.get("utk")):
                raise Refusal(400, "email, objectId or utk is required")
            if not _ISO.match(item.get("occurredAt", "")):
                raise Refusal(400, "occurredAt")
            uuid.UUID(item["uuid"])
        return b""
    raise Refusal(404, f"no route {call.path}")


def hubspot_destination(url: str, **changes: Any) -> Destination:
    settings = {"access_token": Secret(TOKEN), "events": EVENTS}
    return destination("hubspot", url, settings, **changes)


CASES: list[tuple[str, list[dict[str, Any]], list[tuple[str, Any]]]] = [
    (
        "identify: upsert by email with HubSpot's contact properties",
        [
            {
                "type": "identify",
                "userId": "user-1",
                "traits": {
                    "email": "ada@example.com",
                    "firstName": "Ada",
                    "last_name": "Lovelace",
                    "phone": "+44 20 7946 0000",
                    "title": "Engineer",
                    "website": "https://ada.example",
                    "company": {"name": "Analytical Engines", "plan": "x"},
                    "address": {
                        "street": "1 Lane",
                        "city": "London",
                        "state": "LDN",
                        "postalCode": "N1",
                        "country": "UK",
                    },
                    "plan": "pro",
                    "createdAt": "2020-01-01T00:00:00Z",
                },
            }
        ],
        [
            (
                "/crm/v3/objects/contacts/batch/upsert",
                {
                    "inputs": [
                        {
                            "idProperty": "email",
                            "id": "ada@example.com",
                            "properties": {
                                "email": "ada@example.com",
                                "firstname": "Ada",
                                "lastname": "Lovelace",
                                "phone": "+44 20 7946 0000",
                                "jobtitle": "Engineer",
                                "website": "https://ada.example",
                                "company": "Analytical Engines",
                                "address": "1 Lane",
                                "city": "London",
                                "state": "LDN",
                                "zip": "N1",
                                "country": "UK",
                                "plan": "pro",
                            },
                        }
                    ]
                },
            )
        ],
    ),
    (
        "identify with only a full name: firstname and lastname",
        [{"type": "identify", "userId": "u", "traits": {"email": "a@b.co", "name": "Ada King"}}],
        [
            (
                "/crm/v3/objects/contacts/batch/upsert",
                {
                    "inputs": [
                        {
                            "idProperty": "email",
                            "id": "a@b.co",
                            "properties": {
                                "email": "a@b.co",
                                "firstname": "Ada",
                                "lastname": "King",
                            },
                        }
                    ]
                },
            )
        ],
    ),
    (
        "two identifies of one email in a batch: one input, later traits win",
        [
            {"type": "identify", "userId": "u", "traits": {"email": "a@b.co", "plan": "free"}},
            {"type": "identify", "userId": "u", "traits": {"email": "a@b.co", "plan": "pro"}},
        ],
        [
            (
                "/crm/v3/objects/contacts/batch/upsert",
                {
                    "inputs": [
                        {
                            "idProperty": "email",
                            "id": "a@b.co",
                            "properties": {"email": "a@b.co", "plan": "pro"},
                        }
                    ]
                },
            )
        ],
    ),
    (
        "track of a mapped event: an occurrence with email, occurredAt, uuid, properties",
        [
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "u",
                "context": {"traits": {"email": "a@b.co"}},
                "properties": {"orderId": "o-1", "total": 27.5, "gift": True, "items": [1]},
            }
        ],
        [
            (
                "/events/v3/send/batch",
                {
                    "inputs": [
                        {
                            "eventName": "pe1234_order_completed",
                            "email": "a@b.co",
                            "occurredAt": "2026-03-04T05:06:07.890Z",
                            "uuid": str(uuid.uuid5(hubspot.NAMESPACE, "msg-0")),
                            "properties": {"order_id": "o-1", "total": "27.5", "gift": "true"},
                        }
                    ]
                },
            )
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
    api = vendor_server(Vendor(hubspot_api))
    pipeline.send(*stamped(*messages))
    steps, state = deliver(pipeline, hubspot_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["delivered"], [])
    assert api.received() == expected


def test_calls_hubspot_cannot_take_are_filtered_with_the_reason(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(hubspot_api))
    pipeline.send(
        *stamped(
            {"type": "identify", "userId": "u", "traits": {"plan": "pro"}},
            {"type": "track", "event": "Debug", "userId": "u", "properties": {"email": "a@b.co"}},
            {"type": "track", "event": "Signed Up", "userId": "u"},
        )
    )
    steps, state = deliver(pipeline, hubspot_destination(api.url), tmp_path)
    progress = {p.destination: p for p in state.progress()}["hubspot"]
    state.close()
    assert (steps, progress.filtered, api.received()) == (["filtered"], 3, [])


def test_rate_limits_and_server_errors_are_retried_until_everything_arrived_once(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(hubspot_api, flaky(*BURST)))
    messages = []
    for n in range(120):
        email = f"user{n}@example.com"
        if n % 3 == 0:
            messages.append({"type": "identify", "userId": f"u{n}", "traits": {"email": email}})
        else:
            messages.append(
                {"type": "track", "event": "Signed Up", "userId": f"u{n}"}
                | {"properties": {"email": email}}
            )
    pipeline.send(*[message | {"messageId": f"m{n}"} for n, message in enumerate(messages)])
    steps, state = deliver(pipeline, hubspot_destination(api.url), tmp_path)
    progress = {p.destination: p for p in state.progress()}["hubspot"]
    state.close()
    assert set(steps) == {"delivered"} and api.refused == []
    upserted = [
        i["id"] for b in api.bodies("/crm/v3/objects/contacts/batch/upsert") for i in b["inputs"]
    ]
    occurred = [i["email"] for b in api.bodies("/events/v3/send/batch") for i in b["inputs"]]
    assert upserted == [f"user{n}@example.com" for n in range(0, 120, 3)]
    assert occurred == [f"user{n}@example.com" for n in range(120) if n % 3]
    assert (progress.delivered, progress.dead, progress.retries) == (120, 0, len(BURST))


def test_a_wrong_token_is_final(vendor_server: Start, pipeline: Pipeline, tmp_path: Path) -> None:
    api = vendor_server(Vendor(hubspot_api))
    pipeline.send(*stamped({"type": "identify", "userId": "u", "traits": {"email": "a@b.co"}}))
    dest = destination("hubspot", api.url, {"access_token": Secret("expired"), "events": {}})
    steps, state = deliver(pipeline, dest, tmp_path)
    reasons = [letter.reason for letter in state.dead_letters("hubspot")]
    state.close()
    assert (steps, reasons) == (
        ["dead"],
        ['discarded: HTTP 401: {"error": "INVALID_AUTHENTICATION"}'],
    )


def test_a_trait_that_is_no_contact_property_is_refused_by_hubspot_and_dead_lettered(
    vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(hubspot_api))
    pipeline.send(
        *stamped({"type": "identify", "userId": "u", "traits": {"email": "a@b.co", "shoe": 9}})
    )
    steps, state = deliver(pipeline, hubspot_destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused) == (["dead"], ["PROPERTY_DOESNT_EXIST ['shoe']"])
