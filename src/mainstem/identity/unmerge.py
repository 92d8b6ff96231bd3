"""Unmerge: split a profile back along a recorded merge, as if the merging message had never
been resolved.

Every merge is recorded with the message that caused it. Undoing it is not just moving that
profile's identifiers back: later events may have linked the two halves again, attached new
identifiers to the merged profile, or been kept out of it by merge protection only because the
merge made it too big. So the split *replays*: it takes the connected component of the profile —
every profile that owns an identifier carried by any event placed on the component, repeated
until nothing new joins — and resolves the component's events again, in their original order,
without the merging message. An event outside the component carries none of its identifiers, so
it never looked at these profiles and its resolution cannot change: the result is exactly the
graph that resolving everything without that message would have built. (An event that carried
one of the component's identifiers but was kept from taking it by merge protection is placed
elsewhere; the violations it left bring its profile into the component too.)

The message stays in the event store; it is kept out of identity (not placed on any profile) and
recorded as an unmerge. Group calls in the component keep their account profile (accounts do
not depend on user merges); only the links between users and accounts are recomputed.

Pure: the store is reached through :class:`Component`, the event store through ``read``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from mainstem.errors import NotFound, RequestError
from mainstem.identity.cache import Changes
from mainstem.identity.graph import Event, MemoryState, Merge, random_segment_id, resolve
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.rules import Rules
from mainstem.identity.store import PlacedEvent

MAX_EVENTS = 1_000_000
"""A component with more placed events than this is refused: the replay holds it in memory."""


class Component(Protocol):
    """What the split reads from the profiles store (committed state)."""

    def owner(self, id: ExternalId) -> str | None: ...

    def canonical(self, segment_id: str) -> str | None: ...

    def members(self, segment_id: str) -> list[str]: ...

    def merges(self, segment_ids: list[str]) -> list[Merge]: ...

    def kept_out(self, id: ExternalId) -> list[str]:
        """Profiles with events that carried ``id`` but were kept from taking it by merge
        protection: without the merge they might have taken it."""
        ...

    def events(
        self, segment_ids: list[str], *, limit: int, before: int | None = None
    ) -> list[PlacedEvent]: ...


Read = Callable[[Sequence[int]], Mapping[int, Event]]
"""Event-store seqs → the events as resolution sees them; a seq gone from the store is absent."""


@dataclass(slots=True)
class Split:
    """What an unmerge writes, in one transaction."""

    merge: Merge
    """The merge undone."""
    excluded: int
    """Event-store seq of the merging message, now kept out of identity."""
    removed: list[str]
    """Every old segment_id of the component (live and merged away): their rows go."""
    seqs: list[int]
    """Every event of the component: their placements and violations are replaced."""
    changes: Changes = field(default_factory=Changes)
    """The replayed component: live profiles, their identifiers, merges, placements."""
    links: set[tuple[str, str]] = field(default_factory=set)
    """(user segment_id, account segment_id) pairs of the replayed component."""

    def live(self) -> list[str]:
        return sorted(self.changes.profiles)


def plan(component: Component, read: Read, rules: Rules, segment_id: str) -> Split:
    """Replay the component of the profile ``segment_id`` was merged into, without the message
    that merged it.

    Raises:
        NotFound: ``segment_id`` was never merged into a live profile.
        RequestError: the component's events are no longer all in the event store (retention),
            or there are more than :data:`MAX_EVENTS`.
    """
    canonical = component.canonical(segment_id)
    if canonical is None or canonical == segment_id:
        raise NotFound(
            f"{segment_id} was not merged into another profile — name the merged-away "
            "segment_id that `mainstem profile explain` lists under merges"
        )
    members = component.members(canonical)
    merge = next((m for m in component.merges(members) if m.segment_id == segment_id), None)
    assert merge is not None, "a merged-away profile has its merge recorded"
    removed, placed, events = _gather(component, read, canonical)
    split = Split(
        merge=merge,
        excluded=_merging_seq(merge, placed, events),
        removed=sorted(removed),
        seqs=sorted(events),
    )
    _replay(split, placed, events, rules, component)
    return split


def _gather(
    component: Component, read: Read, start: str
) -> tuple[set[str], list[PlacedEvent], dict[int, Event]]:
    """The component's segment_ids (live and merged away), placements and events: grow it by
    the owners of every identifier its events carry until nothing new joins."""
    live: set[str] = set()
    members: set[str] = set()
    seen: set[ExternalId] = set()
    queue = [start]
    placed: list[PlacedEvent] = []
    events: dict[int, Event] = {}
    while queue:
        profile = queue.pop()
        if profile in live:
            continue
        live.add(profile)
        ids = component.members(profile)
        members.update(ids)
        found = component.events(ids, limit=MAX_EVENTS + 1)
        placed.extend(found)
        if len(placed) > MAX_EVENTS:
            raise RequestError(
                f"the profiles linked to {start} have more than {MAX_EVENTS:,} events — "
                "too many to replay in memory"
            )
        wanted = [p.seq for p in found]
        got = read(wanted)
        missing = [seq for seq in wanted if seq not in got]
        if missing:
            raise RequestError(
                f"event #{min(missing)} of {profile} is gone from the event store (retention) — "
                "the profile can no longer be replayed without it"
            )
        events.update(got)
        for event in got.values():
            for id in event.ids:
                if id in seen:
                    continue
                seen.add(id)
                owner = component.owner(id)
                if owner is not None and owner not in live:
                    queue.append(owner)
                for other in component.kept_out(id):
                    found_in = component.canonical(other)
                    if found_in is not None and found_in not in live:
                        queue.append(found_in)
    return members, placed, events


def _merging_seq(merge: Merge, placed: list[PlacedEvent], events: Mapping[int, Event]) -> int:
    for p in placed:
        event = events[p.seq]
        if (event.message_id, event.source_id, event.timestamp) == (
            merge.message_id,
            merge.source_id,
            merge.timestamp,
        ):
            return p.seq
    raise RequestError(
        f"the message that merged {merge.segment_id} ({merge.message_id}) is not placed on the "
        "profile any more — it may have been unmerged already"
    )


def _replay(
    split: Split,
    placed: list[PlacedEvent],
    events: Mapping[int, Event],
    rules: Rules,
    component: Component,
) -> None:
    # A replayed profile created by the same event as an old one keeps its segment_id, so the
    # profile split off gets its old id back and unaffected profiles keep theirs.
    # The lowest seq placed on a segment_id is the event that created it.
    first: dict[str, int] = {}
    for p in placed:
        if p.seq < first.get(p.segment_id, p.seq + 1):
            first[p.segment_id] = p.seq
    reuse = {seq: segment_id for segment_id, seq in first.items()}
    current = 0

    def segment_ids(collection: str) -> str:
        return reuse.pop(current, None) or random_segment_id(collection)

    state = MemoryState(segment_ids)
    groups: list[tuple[str, ExternalId]] = []
    for seq in split.seqs:
        if seq == split.excluded:
            continue
        current = seq
        event = events[seq]
        # Accounts keep their traits and metadata: only the user side is replayed.
        result = resolve(state, rules, msgspec.structs.replace(event, group=None))
        split.changes.place(seq, event, result)
        group = event.group
        if (
            group is not None
            and result.segment_id is not None
            and not rules.is_blocked(group.value)
        ):
            groups.append((result.segment_id, group))
    for user, group in groups:
        account = component.owner(group)
        if account is not None:
            split.links.add((state.canonical(user), account))
            profile = state.profiles[state.canonical(user)]
            profile.links.add(account)
            profile.relinked = True
    for profile in state.profiles.values():
        profile.changed.update(profile.traits)
        split.changes.profiles[profile.segment_id] = profile
    split.changes.claimed = dict(state.owners)
    split.changes.merges = list(state.merged.values())
