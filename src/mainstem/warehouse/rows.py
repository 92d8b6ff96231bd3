"""A normalized Segment message → the warehouse rows it lands as (reference §7.1, §7.4, §7.5).

Pure, no I/O. A track becomes a ``tracks`` row and a row in its event's table; identify an
``identifies`` row and, with a ``userId``, a ``users`` patch; group a ``groups`` row and an
``accounts`` patch; page, screen and alias one row each. ``channel``, ``type``, ``version``,
``projectId``, ``integrations`` and SDK metadata are not loaded, as in Segment's warehouses.

A property, trait or context column whose name is taken by a system column (``id``,
``user_id``, ``timestamp``, …), starts with ``context_`` outside the context, starts with a
digit or is a reserved word gets a ``_`` prefix — Segment's Redshift rule, chosen over dropping
the value (the reference notes the docs disagree, §7.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from mainstem.warehouse import naming
from mainstem.warehouse.flatten import Lost, flatten
from mainstem.warehouse.types import LogicalType

Kind = Literal[
    "tracks",
    "event",
    "identifies",
    "users",
    "pages",
    "screens",
    "groups",
    "accounts",
    "aliases",
]

_EVENT_BASE: Final[dict[str, LogicalType]] = {
    "id": "varchar",
    "anonymous_id": "varchar",
    "user_id": "varchar",
    "received_at": "timestamp",
    "sent_at": "timestamp",
    "timestamp": "timestamp",
    "original_timestamp": "timestamp",
    "uuid_ts": "timestamp",
    "loaded_at": "timestamp",
}
_PROFILE_BASE: Final[dict[str, LogicalType]] = {
    "id": "varchar",
    "received_at": "timestamp",
    "uuid_ts": "timestamp",
    "loaded_at": "timestamp",
}
SYSTEM_COLUMNS: Final[Mapping[Kind, Mapping[str, LogicalType]]] = {
    "tracks": {**_EVENT_BASE, "event": "varchar", "event_text": "varchar"},
    "event": {**_EVENT_BASE, "event": "varchar", "event_text": "varchar"},
    "identifies": _EVENT_BASE,
    "users": _PROFILE_BASE,
    "pages": {**_EVENT_BASE, "name": "varchar", "category": "varchar"},
    "screens": {**_EVENT_BASE, "name": "varchar", "category": "varchar"},
    "groups": {**_EVENT_BASE, "group_id": "varchar"},
    "accounts": _PROFILE_BASE,
    "aliases": {**_EVENT_BASE, "previous_id": "varchar"},
}
"""The fixed columns of each kind of table, created with the table, in this order."""

UPSERTED: Final = frozenset({"users", "accounts"})
"""Tables that hold the latest state per ``id`` rather than one row per message."""

LOAD_TIME_COLUMNS: Final = ("uuid_ts", "loaded_at")
"""Filled by the loader with the time of the load (Segment: ``uuid_ts``; BigQuery:
``loaded_at``)."""


@dataclass(slots=True)
class Row:
    table: str
    kind: Kind
    values: dict[str, Any]
    lost: list[Lost] = field(default_factory=list)
    message_id: str | None = None
    """For users/accounts patches: the identify/group they came from."""


_renames: dict[Kind | None, dict[str, str]] = {}
"""kind → flattened name → column (``None``: context columns). Bounded: hostile input can invent
names forever, and a name not kept is just recomputed."""


def rename(kind: Kind | None, name: str) -> str:
    """The column of a flattened context name (``kind`` ``None``) or of a property/trait name on
    a table of ``kind``."""
    renamed = name
    if kind is not None and (
        name in SYSTEM_COLUMNS[kind] or (kind not in UPSERTED and name.startswith("context_"))
    ):
        renamed = "_" + name
    renamed = naming.column(renamed)
    known = _renames.setdefault(kind, {})
    if len(known) < 1 << 15:
        known[name] = renamed
    return renamed


def _add_user_values(row: Row, obj: Any, path: str, skip: Mapping[str, Any] | None = None) -> None:
    """Flatten a properties/traits object into ``row`` under the kind's column rules."""
    if not isinstance(obj, dict) or not obj:
        return
    flat: dict[str, Any] = {}
    flatten(obj, "", flat, row.lost, path)
    values = row.values
    kind = row.kind
    known = _renames.get(kind) or {}
    for name, value in flat.items():
        if skip is not None and name in skip and skip[name] == value:
            continue  # analytics.js mirrors page name/category into properties (§2.2)
        col = known.get(name) or rename(kind, name)
        if col in values:
            row.lost.append(Lost(f"{path}.{name}", col, "name_collision", value))
        else:
            values[col] = value


def _common(msg: Mapping[str, Any], lost: list[Lost]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": msg.get("messageId"),
        "anonymous_id": msg.get("anonymousId"),
        "user_id": msg.get("userId"),
        "received_at": msg.get("receivedAt"),
        "sent_at": msg.get("sentAt"),
        "timestamp": msg.get("timestamp"),
        "original_timestamp": msg.get("originalTimestamp"),
    }
    context = msg.get("context")
    if isinstance(context, dict) and context:
        flat: dict[str, Any] = {}
        flatten(context, "context", flat, lost, "context")
        known = _renames.get(None) or {}
        for name, value in flat.items():
            col = known.get(name) or rename(None, name)
            if col in values:
                lost.append(Lost(f"context.{name}", col, "name_collision", value))
            else:
                values[col] = value
    return values


def rows(msg: Mapping[str, Any]) -> list[Row]:
    """Every row ``msg`` lands as, in the order they should be loaded."""
    kind = msg.get("type")
    lost: list[Lost] = []
    common = _common(msg, lost)
    if kind == "track":
        event = str(msg.get("event", ""))
        table = naming.event_table(event)
        common["event"] = table
        common["event_text"] = event
        track = Row("tracks", "tracks", dict(common), list(lost))
        own = Row(table, "event", common, lost)
        _add_user_values(own, msg.get("properties"), "properties")
        return [track, own]
    if kind == "identify":
        row = Row("identifies", "identifies", common, lost)
        _add_user_values(row, msg.get("traits"), "traits")
        return [row, *patches(msg)]
    if kind in ("page", "screen"):
        table = "pages" if kind == "page" else "screens"
        top = {key: msg[key] for key in ("name", "category") if key in msg}
        common.update(top)
        row = Row(table, table, common, lost)  # type: ignore[arg-type]
        _add_user_values(row, msg.get("properties"), "properties", skip=top)
        return [row]
    if kind == "group":
        common["group_id"] = msg.get("groupId")
        row = Row("groups", "groups", common, lost)
        _add_user_values(row, msg.get("traits"), "traits")
        return [row, *patches(msg)]
    if kind == "alias":
        common["previous_id"] = msg.get("previousId")
        return [Row("aliases", "aliases", common, lost)]
    raise ValueError(
        f"message {msg.get('messageId')!r} has type {kind!r}; the warehouse loads track, "
        "identify, page, screen, group and alias"
    )


def patches(msg: Mapping[str, Any]) -> list[Row]:
    """The ``users`` patch of an identify with a ``userId``, the ``accounts`` patch of a group:
    the part of :func:`rows` that is upserted."""
    kind = msg.get("type")
    if kind == "identify":
        key = msg.get("userId")
        if key is None:
            return []
        patch = Row("users", "users", {"id": key, "received_at": msg.get("receivedAt")})
    elif kind == "group":
        patch = Row(
            "accounts",
            "accounts",
            {"id": msg.get("groupId"), "received_at": msg.get("receivedAt")},
        )
    else:
        return []
    patch.message_id = msg.get("messageId")
    _add_user_values(patch, msg.get("traits"), "traits")
    return [patch]
