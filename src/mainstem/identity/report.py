"""Reading a profile back: find it by ``type:value`` or ``segment_id``, and gather what explains
it (identifiers, merges, dropped identifiers, recent events) for ``mainstem profile``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from mainstem.errors import NotFound, RequestError, RetryLater
from mainstem.identity import unmerge as unmerging
from mainstem.identity.graph import Event, Merge, Profile
from mainstem.identity.identifiers import CustomIdentifier, ExternalId
from mainstem.identity.rules import Rules
from mainstem.identity.store import PlacedEvent, ProfileStore, Unmerge, Violation
from mainstem.storage import EventQuery, PipelineStore


def find(store: ProfileStore, ref: str) -> Profile:
    """The live profile ``ref`` names: ``type:value`` or a (possibly merged-away) segment_id.

    Raises:
        NotFound: no profile holds that identifier.
    """
    kind, sep, value = ref.partition(":")
    segment_id = store.owner(ExternalId(kind, value)) if sep else store.canonical(ref)
    profile = store.load(segment_id) if segment_id is not None else None
    if profile is None:
        hint = "" if sep else " — name it as type:value, e.g. user_id:123 or email:a@b.com"
        raise NotFound(f"no profile has {ref!r}{hint}")
    return profile


@dataclass(frozen=True, slots=True)
class Explanation:
    profile: Profile
    members: list[str]
    """The profile and every profile merged into it."""
    merges: list[Merge]
    violations: list[Violation]
    unmerges: list[Unmerge]
    """Merges undone that involved this profile."""
    events: list[PlacedEvent]
    """The most recent events, newest first."""
    links: list[Profile]


def explain(store: ProfileStore, ref: str, *, events: int = 20) -> Explanation:
    profile = find(store, ref)
    members = store.members(profile.segment_id)
    linked = [store.load(segment_id) for segment_id in sorted(profile.links)]
    return Explanation(
        profile=profile,
        members=members,
        merges=store.merges(members),
        violations=store.violations(members),
        unmerges=store.unmerges(members),
        events=store.events(members, limit=events),
        links=[p for p in linked if p is not None],
    )


def delete(store: ProfileStore, ref: str) -> tuple[Profile, int]:
    """Delete the profile ``ref`` names and everything about it; returns it and how many
    profiles (it and those merged into it) were removed. Events stay in the event store.

    Raises:
        NotFound: no profile holds that identifier.
    """
    profile = find(store, ref)
    return profile, store.delete(profile.segment_id)


def unmerge(
    store: ProfileStore,
    events: PipelineStore,
    segment_id: str,
    *,
    rules: Rules | None = None,
    custom: Sequence[CustomIdentifier] = (),
    attempts: int = 5,
) -> unmerging.Split:
    """Split ``segment_id`` back off the profile it was merged into, replaying the events after
    the merge as if the merging message had never been resolved (see :mod:`.unmerge`).

    Raises:
        NotFound: ``segment_id`` was not merged into a live profile.
        RequestError: the events to replay are gone from the event store, or too many.
        RetryLater: the resolver kept committing while the split was planned.
    """
    rules = rules or Rules()

    def read(seqs: Sequence[int]) -> Mapping[int, Event]:
        found: dict[int, Event] = {}
        for seq in seqs:
            rows = events.events(EventQuery(after=seq - 1, limit=1))
            if not rows or rows[0].seq != seq:
                continue
            try:
                message = msgspec.json.decode(rows[0].body)
            except msgspec.DecodeError:
                continue
            if isinstance(message, dict):
                row = rows[0]
                found[seq] = Event.from_message(message, row.source_id, row.received_at, custom)
        return found

    for attempt in range(attempts):
        position, generation = store.position(), store.generation()
        split = unmerging.plan(store, read, rules, segment_id)
        try:
            store.split(split, position=position, generation=generation)
        except RetryLater:
            if attempt == attempts - 1:
                raise
            continue
        return split
    raise AssertionError("unreachable")


def check_identifier_deletion(profile: Profile, id: ExternalId) -> None:
    """Segment's rules for deleting one identifier from a profile (reference §3.9).

    Raises:
        RequestError: ``group_id`` (it keys an account: ``unsupported_eid_type``) or the
            profile's last ``user_id`` (``bad_request``).
        NotFound: the profile does not hold ``id`` (``eid_not_found``).
    """
    if id.type == "group_id":
        raise RequestError(
            "group_id identifiers cannot be deleted — they key account profiles",
            code="unsupported_eid_type",
        )
    if id not in profile.identifiers:
        raise NotFound(f"{profile.segment_id} has no identifier {id}", code="eid_not_found")
    if id.type == "user_id" and sum(1 for i in profile.identifiers if i.type == "user_id") == 1:
        raise RequestError(
            f"{id} is the last user_id of {profile.segment_id} and cannot be deleted"
        )


def delete_identifier(store: ProfileStore, ref: str, id: ExternalId) -> Profile:
    """Take ``id`` off the profile ``ref`` names; its traits, events and merge history stay.
    A later event carrying ``id`` resolves as if no profile held it. Returns the profile as it
    is now.

    Raises:
        NotFound: no profile holds ``ref``, or it does not hold ``id``.
        RequestError: ``id`` may not be deleted (see :func:`check_identifier_deletion`).
    """
    profile = find(store, ref)
    check_identifier_deletion(profile, id)
    if not store.delete_identifier(profile.segment_id, id):
        raise NotFound(f"{profile.segment_id} has no identifier {id}", code="eid_not_found")
    del profile.identifiers[id]
    return profile
