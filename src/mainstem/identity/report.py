"""Reading a profile back: find it by ``type:value`` or ``segment_id``, and gather what explains
it (identifiers, merges, dropped identifiers, recent events) for ``mainstem profile``."""

from __future__ import annotations

from dataclasses import dataclass

from mainstem.errors import NotFound
from mainstem.identity.graph import Merge, Profile
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.store import PlacedEvent, ProfileStore, Violation


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
