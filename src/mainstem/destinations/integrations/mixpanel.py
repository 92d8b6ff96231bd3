"""Mixpanel: events through the Import API, profiles through the Engage API, groups through the
Groups API (pure).

* track, page, screen → ``POST /import?strict=1`` (JSON array, up to 2000 events): ``time`` in
  ms, ``distinct_id`` = userId, else anonymousId; ``$user_id`` / ``$device_id`` so Simplified ID
  Merge links the anonymous and the known user; ``$insert_id`` from the messageId, so a retried
  batch is deduplicated by Mixpanel. Page → ``Loaded a Page``, screen → ``Loaded a Screen``
  (Segment's consolidated page calls). Auth: HTTP Basic with the project token as user, or a
  service account with ``project_id``.
* track with a non-zero ``properties.revenue`` → also ``POST /engage`` ``$append`` of
  ``{"$transactions": {"$time", "$amount"}}`` for the user, as Segment's Mixpanel destination
  does with people enabled (this one always sends profiles), so Mixpanel's Revenue report sees
  it.
* identify → ``POST /engage`` ``$set`` with Mixpanel's reserved profile properties
  (``$email``, ``$first_name``, …) and ``$ip``; ``context.active: false`` → ``$ignore_time``.
* alias → an imported ``$merge`` event of ``previousId`` and ``userId``.
* group → ``POST /groups`` ``$set`` of the group traits under ``group_key``, and ``$union`` of
  the group id into that key on the user's profile.

Engage and Groups answer ``200`` even when they reject an update; with ``verbose=1`` the body says
``{"status": 0, "error": ...}``, which :func:`answer` turns into a 400.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mainstem.destinations.integrations import message as m
from mainstem.destinations.integrations.integration import (
    Integration,
    Message,
    Option,
    Request,
    Settings,
    basic_auth,
    chunks,
    reveal,
)
from mainstem.destinations.retry import Response

PROFILE_TRAITS: tuple[tuple[str, str | None, str], ...] = (
    ("email", None, "$email"),
    ("firstName", "first_name", "$first_name"),
    ("lastName", "last_name", "$last_name"),
    ("name", None, "$name"),
    ("phone", None, "$phone"),
    ("username", None, "$username"),
    ("avatar", None, "$avatar"),
    ("createdAt", "created_at", "$created"),
)
"""Segment trait (camelCase, snake_case) → Mixpanel reserved profile property."""

CONTEXT_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("context.page.url", "$current_url"),
    ("context.page.referrer", "$referrer"),
    ("context.os.name", "$os"),
    ("context.os.version", "$os_version"),
    ("context.app.version", "$app_version_string"),
    ("context.app.build", "$app_build_number"),
    ("context.device.manufacturer", "$manufacturer"),
    ("context.device.model", "$model"),
    ("context.network.carrier", "$carrier"),
    ("context.network.wifi", "$wifi"),
    ("context.screen.width", "$screen_width"),
    ("context.screen.height", "$screen_height"),
    ("context.ip", "ip"),
    ("context.campaign.source", "utm_source"),
    ("context.campaign.medium", "utm_medium"),
    ("context.campaign.name", "utm_campaign"),
    ("context.campaign.term", "utm_term"),
    ("context.campaign.content", "utm_content"),
)
"""Segment context field → Mixpanel event property."""

MAX_RECORDS = 2000
MAX_IMPORT_BYTES = 10_000_000 - 100_000
"""Mixpanel takes at most 2000 events or profile updates, and 10 MB, per request."""


def distinct_id(message: Message) -> str | None:
    return m.user_id(message) or m.anonymous_id(message)


def skip(message: Message, settings: Settings) -> str | None:
    if message.get("type") == "alias":
        if m.identifier(message.get("previousId")) is None or m.user_id(message) is None:
            return "Mixpanel: an alias needs previousId and userId"
        return None
    if distinct_id(message) is None:
        return "Mixpanel: no usable userId or anonymousId for distinct_id"
    return None


def event(message: Message) -> dict[str, Any]:
    """One Import API event for a track, page, screen or alias call."""
    kind = message.get("type")
    if kind == "alias":
        ids = [m.identifier(message.get("previousId")), m.user_id(message)]
        return {
            "event": "$merge",
            "properties": {
                "$distinct_ids": ids,
                "time": m.millis(message),
                "$insert_id": m.insert_id(message),
            },
        }
    props = m.pick(message, CONTEXT_PROPERTIES)
    if kind in {"page", "screen"}:
        page = m.page_name(message)
        if page is not None:
            props["name"] = page
        category = m.text(message.get("category"))
        if category is not None:
            props["category"] = category
        title = m.page_event(message, named=False)
    else:
        title = str(message.get("event"))
    props.update(m.properties(message))
    props.update(
        m.without_none(
            {
                "time": m.millis(message),
                "distinct_id": distinct_id(message),
                "$insert_id": m.insert_id(message),
                "$user_id": m.user_id(message),
                "$device_id": m.anonymous_id(message),
                "mp_lib": "mainstem",
            }
        )
    )
    return {"event": title, "properties": props}


def _engage(message: Message, token: str, operation: str, value: object) -> dict[str, Any]:
    """One Engage update of the message's user: ``$ip`` from ``context.ip`` (else Mixpanel
    locates the profile at the sender's address), ``$ignore_time`` for ``context.active:
    false``."""
    update: dict[str, Any] = {
        "$token": token,
        "$distinct_id": distinct_id(message),
        operation: value,
    }
    ip = m.text(m.dig(message, "context.ip"))
    if ip is not None:
        update["$ip"] = ip
    if m.dig(message, "context.active") is False:
        update["$ignore_time"] = True
    return update


def transaction(message: Message, token: str) -> dict[str, Any] | None:
    """The Engage ``$append`` of a ``$transactions`` entry for a track call with revenue, as
    Segment's ``people.track_charge``; ``None`` without a non-zero ``properties.revenue``."""
    if message.get("type") != "track":
        return None
    amount = m.number(m.properties(message).get("revenue"))
    if not amount:  # Segment sends no charge for revenue 0 (nor for a missing one)
        return None
    # Mixpanel's documented $transactions time: "YYYY-MM-DDTHH:MM:SS", UTC, no milliseconds
    entry = {"$time": m.iso(message)[:19], "$amount": amount}
    return _engage(message, token, "$append", {"$transactions": entry})


def profile(message: Message, token: str) -> dict[str, Any]:
    """One Engage ``$set`` update for an identify call."""
    traits = dict(m.traits(message))
    updates: dict[str, Any] = {}
    for camel, snake, name in PROFILE_TRAITS:
        value = traits.pop(camel, None)
        if snake is not None:
            value = traits.pop(snake, None) if value is None else value
            traits.pop(snake, None)
        if value is not None:
            updates[name] = value
    updates.update(traits)
    return _engage(message, token, "$set", updates)


def group(message: Message, token: str, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Groups API ``$set`` and the user's Engage ``$union`` for a group call."""
    group_id = m.text(message.get("groupId"))
    group_update = {
        "$token": token,
        "$group_key": key,
        "$group_id": group_id,
        "$set": dict(m.traits(message)),
    }
    member = {"$token": token, "$distinct_id": distinct_id(message), "$union": {key: [group_id]}}
    return group_update, member


def requests(messages: Sequence[Message], settings: Settings) -> list[Request]:
    token = reveal(settings, "token")
    key = str(settings.get("group_key") or "company_id")
    imported: list[dict[str, Any]] = []
    engage: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    for message in messages:
        kind = message.get("type")
        if kind == "identify":
            engage.append(profile(message, token))
        elif kind == "group":
            group_update, member = group(message, token, key)
            groups.append(group_update)
            engage.append(member)
        else:
            imported.append(event(message))
            charge = transaction(message, token)
            if charge is not None:
                engage.append(charge)
    result: list[Request] = []
    if imported:
        params: list[tuple[str, str]] = [("strict", "1")]
        username = reveal(settings, "username")
        if username:
            auth = basic_auth(username, reveal(settings, "secret"))
            params.append(("project_id", str(settings.get("project_id"))))
        else:
            auth = basic_auth(token)
        for chunk in chunks(imported, count=MAX_RECORDS, size=MAX_IMPORT_BYTES):
            result.append(Request("/import", chunk, tuple(params), (auth,)))
    for path, updates in (("/engage", engage), ("/groups", groups)):
        for chunk in chunks(updates, count=MAX_RECORDS, size=MAX_IMPORT_BYTES):
            result.append(Request(path, chunk, (("verbose", "1"),)))
    return result


def answer(request: Request, response: Response) -> Response:
    """Engage and Groups report rejected updates in a 200 body (``status: 0``)."""
    if request.path == "/import" or response.status != 200:
        return response
    try:
        body = json.loads(response.body)
    except ValueError:
        return response
    if isinstance(body, Mapping) and body.get("status") == 0:
        return Response(400, body=response.body, retry_after=response.retry_after)
    return response


INTEGRATION = Integration(
    type="mixpanel",
    display_name="Mixpanel",
    endpoint="https://api.mixpanel.com",
    options=(
        Option(
            "token",
            "Project token: $token of profile updates, and the Basic-auth user of /import "
            "when no service account is set.",
            required=True,
            secret=True,
        ),
        Option(
            "username",
            "Service account username for /import (with secret, project_id).",
            needs=("secret", "project_id"),
        ),
        Option("secret", "Service account secret.", secret=True),
        Option("project_id", "Project id; required with a service account."),
        Option("group_key", "Group key for group calls.", default="company_id"),
    ),
    types=("track", "identify", "page", "screen", "group", "alias"),
    batch_size=50,
    max_batch=2000,
    requests=requests,
    skip=skip,
    answer=answer,
)
