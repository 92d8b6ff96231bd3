"""HubSpot: contacts through the CRM v3 API and custom behavioral events (pure).

Auth is a private app's access token as ``Authorization: Bearer``.

* identify with an email → ``POST /crm/v3/objects/contacts/batch/upsert`` with
  ``{"inputs": [{"idProperty": "email", "id": <email>, "properties": {...}}]}`` (at most 100;
  one input per email, later traits win). Reserved traits map to HubSpot's contact properties
  (:data:`CONTACT_PROPERTIES`); other scalar traits go under their lower-case snake_case name,
  which must exist as a contact property in HubSpot (it answers 400 otherwise — drop them with
  a ``drop_properties`` filter).
* track of an event listed in the ``events`` setting → ``POST /events/v3/send/batch`` with
  ``{"inputs": [{"eventName": <pe…_name>, "email", "occurredAt", "uuid", "properties"}]}``
  (custom behavioral events must be defined in HubSpot first; ``uuid`` from the messageId lets
  HubSpot drop a retried occurrence). Scalar properties go under their snake_case names.

Identify without an email, and track events that are not mapped or have no email (traits,
``context.traits`` or ``properties.email``), are skipped with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from mainstem.destinations.integrations import message as m
from mainstem.destinations.integrations.integration import (
    Integration,
    Message,
    Option,
    Request,
    Settings,
    bearer,
    chunks,
    reveal,
)

MAX_INPUTS = 100
"""Batch upsert takes at most 100 inputs; the events batch 500 — we use 100 for both."""
MAX_BYTES = 3_000_000
"""HubSpot documents input counts, not bytes: this only keeps one request body moderate."""

CONTACT_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("email", "email"),
    ("firstName", "firstname"),
    ("first_name", "firstname"),
    ("lastName", "lastname"),
    ("last_name", "lastname"),
    ("phone", "phone"),
    ("title", "jobtitle"),
    ("website", "website"),
    ("company.name", "company"),
    ("address.street", "address"),
    ("address.city", "city"),
    ("address.state", "state"),
    ("address.postalCode", "zip"),
    ("address.country", "country"),
)
"""Segment trait (dotted path) → HubSpot contact property; a string ``company`` trait is the
company name."""

_RESERVED = frozenset(
    {"email", "firstName", "first_name", "lastName", "last_name", "phone"}
    | {"title", "website", "company", "address", "name", "id", "createdAt", "created_at"}
)
NAMESPACE = uuid.UUID("6f1f6a47-1a4b-4c55-9a36-5b9d3b0e7a11")
"""Occurrence ``uuid`` = UUIDv5 of the messageId in this namespace: stable across retries."""


def _events(settings: Settings) -> Mapping[str, str]:
    found = settings.get("events")
    return found if isinstance(found, Mapping) else {}


def skip(message: Message, settings: Settings) -> str | None:
    kind = message.get("type")
    if kind == "track" and str(message.get("event")) not in _events(settings):
        return f"HubSpot: event {message.get('event')!r} is not mapped in settings.events"
    if m.email(message) is None:
        return "HubSpot: no email in traits, context.traits or properties"
    return None


def contact(message: Message) -> dict[str, Any]:
    traits = m.traits(message)
    props: dict[str, Any] = {}
    for path, target in CONTACT_PROPERTIES:
        value = m.dig(traits, path)
        if value is not None and target not in props:
            props[target] = value
    company = traits.get("company")
    if isinstance(company, str) and "company" not in props:
        props["company"] = company
    name = m.text(traits.get("name"))
    if name is not None and "firstname" not in props and "lastname" not in props:
        # HubSpot has no full-name property: split it the way Segment derives `name` (§2.3)
        first, _, last = name.strip().partition(" ")
        props["firstname"] = first
        if last.strip():
            props["lastname"] = last.strip()
    for key, value in m.scalars(traits).items():
        if key not in _RESERVED:
            props.setdefault(m.snake(key), value)
    props["email"] = m.email(message)
    return {"idProperty": "email", "id": m.email(message), "properties": _strings(props)}


def _strings(props: Mapping[str, Any]) -> dict[str, str]:
    """HubSpot property values are strings (booleans as ``true`` / ``false``)."""
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for key, value in props.items()
    }


def occurrence(message: Message, event_name: str) -> dict[str, Any]:
    message_id = m.text(message.get("messageId")) or m.insert_id(message)
    return {
        "eventName": event_name,
        "email": m.email(message),
        "occurredAt": m.iso(message),
        "uuid": str(uuid.uuid5(NAMESPACE, message_id)),
        "properties": _strings(
            {m.snake(k): v for k, v in m.scalars(m.properties(message)).items()}
        ),
    }


def requests(messages: Sequence[Message], settings: Settings) -> list[Request]:
    auth = (bearer(reveal(settings, "access_token")),)
    names = _events(settings)
    contacts: dict[str, dict[str, Any]] = {}
    occurrences: list[dict[str, Any]] = []
    for message in messages:
        if message.get("type") == "identify":
            found = contact(message)
            earlier = contacts.get(found["id"].lower())
            if earlier is not None:
                found["properties"] = earlier["properties"] | found["properties"]
            contacts[found["id"].lower()] = found
        else:
            occurrences.append(occurrence(message, names[str(message.get("event"))]))
    result: list[Request] = []
    for path, inputs in (
        ("/crm/v3/objects/contacts/batch/upsert", list(contacts.values())),
        ("/events/v3/send/batch", occurrences),
    ):
        for group in chunks(inputs, count=MAX_INPUTS, size=MAX_BYTES):
            result.append(Request(path, {"inputs": group}, (), auth))
    return result


INTEGRATION = Integration(
    type="hubspot",
    display_name="HubSpot",
    endpoint="https://api.hubapi.com",
    options=(
        Option("access_token", "A private app's access token.", required=True, secret=True),
        Option(
            "events",
            "Segment event name → HubSpot custom event name (pe<HubID>_<name>); other track "
            "events are skipped.",
            "map",
            default={},
        ),
    ),
    types=("identify", "track"),
    batch_size=100,
    max_batch=100,
    requests=requests,
    skip=skip,
)
