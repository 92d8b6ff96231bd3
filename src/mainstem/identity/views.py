"""The JSON shapes of Segment's Profile API (reference §4), built from plain values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mainstem import timestamps
from mainstem.identity.graph import Identifier, Profile
from mainstem.identity.identifiers import ExternalId, group_identifier, user_identifiers
from mainstem.identity.traits import Trait
from mainstem.identity.unmerge import Split


def cursor(url: str, has_more: bool, next: str, limit: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "has_more": has_more, "next": next}
    if limit is not None:
        body["limit"] = limit
    return body


def traits(items: Sequence[tuple[str, Trait]], verbose: bool) -> dict[str, Any]:
    if not verbose:
        return {key: trait.value for key, trait in items}
    return {
        key: {
            "value": trait.value,
            "source_id": trait.source_id,
            "updated_at": timestamps.format_us(trait.updated_at),
        }
        for key, trait in items
    }


def external_id(identifier: Identifier, collection: str, verbose: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source_id": identifier.source_id,
        "collection": collection,
        "id": identifier.id.value,
        "type": identifier.id.type,
        "created_at": timestamps.format_us(identifier.created_at),
        "encoding": "none",
    }
    if verbose:
        body["first_message_id"] = identifier.first_message_id
    return body


def metadata(profile: Profile) -> dict[str, Any]:
    return {
        "created_at": timestamps.format_us(profile.created_at),
        "updated_at": timestamps.format_us(profile.updated_at),
        "expires_at": None,
        "first_message_id": profile.first_message_id,
        "first_source_id": profile.first_source_id,
        "last_message_id": profile.last_message_id,
        "last_source_id": profile.last_source_id,
    }


def _event_ids(message: Mapping[str, Any]) -> list[ExternalId]:
    found = user_identifiers(message)
    group = group_identifier(message)
    return [*found, group] if group is not None else found


def event(message: Mapping[str, Any], source_id: str, segment_id: str) -> dict[str, Any]:
    """One stored message as the ``/events`` endpoint shows it."""
    body: dict[str, Any] = {
        "external_ids": [
            {
                "collection": "accounts" if id.type == "group_id" else "users",
                "type": id.type,
                "id": id.value,
                "encoding": "none",
            }
            for id in _event_ids(message)
        ],
        "context": message.get("context", {}),
        "type": message.get("type"),
        "message_id": message.get("messageId"),
        "source_id": source_id,
        "timestamp": message.get("timestamp"),
    }
    for key in ("properties", "traits", "event", "name", "category", "groupId", "previousId"):
        if key in message:
            body[key] = message[key]
    body["related"] = {"users": segment_id}
    return body


def split(done: Split) -> dict[str, Any]:
    """What an unmerge did, for ``POST /api/v1/profiles/{segment_id}/unmerge``."""
    merge = done.merge
    return {
        "segment_id": merge.segment_id,
        "canonical_segment_id": merge.canonical_segment_id,
        "message_id": merge.message_id,
        "excluded_seq": done.excluded,
        "replayed_events": len(done.seqs) - 1,
        "profiles": [
            {
                "segment_id": segment_id,
                "external_ids": [
                    {"type": id.type, "id": id.value}
                    for id in sorted(done.changes.profiles[segment_id].identifiers)
                ],
            }
            for segment_id in done.live()
        ],
    }
