"""The table rows a batch of graph changes writes, as plain tuples.

Built on the resolver's thread from the profiles the batch changed, so a store may write them on
another thread while the resolver already changes those same profiles for the next batch: the
rows hold only strings and numbers, never a profile. Building them marks the profiles written
(``changed`` and ``relinked`` are cleared): after a failed commit the resolver drops its cache.

Pure: no database here; the column order is that of the profiles store's tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from mainstem.identity.cache import Changes

_encode = msgspec.json.Encoder().encode

ProfileRow = tuple[str, str, int, str, str, int, str, str, int]
IdentifierRow = tuple[str, str, str, str, str, int]
TraitRow = tuple[str, str, str, int, str, int]
MergeRow = tuple[str, str, str, str, str, int, str, str, str]
PlacementRow = tuple[int, str, str, str, int]
ViolationRow = tuple[int, str, str | None, str, str, str, str]


@dataclass(frozen=True, slots=True)
class Rows:
    merges: list[MergeRow]
    retired: list[str]
    """Profiles merged away: their profile, trait and link rows go."""
    profiles: list[ProfileRow]
    identifiers: list[IdentifierRow]
    traits: list[TraitRow]
    """``value`` is the trait's JSON text."""
    links: list[tuple[str, str]]
    """Every link of each relinked profile: those rows are kept or added, the profile's
    others go."""
    relinked: list[str]
    placements: list[PlacementRow]
    violations: list[ViolationRow]


def rows_of(changes: Changes) -> Rows:
    """The rows ``changes`` writes; marks its profiles written."""
    profiles = list(changes.profiles.values())
    traits: list[TraitRow] = []
    relinked: list[str] = []
    links: list[tuple[str, str]] = []
    for p in profiles:
        for key in p.changed:
            t = p.traits[key]
            value = _encode(t.value).decode()
            traits.append((p.segment_id, key, value, t.updated_at, t.source_id, int(t.removed)))
        p.changed.clear()
        if p.relinked:
            relinked.append(p.segment_id)
            links.extend((p.segment_id, other) for other in p.links)
            p.relinked = False
    return Rows(
        merges=[
            (
                m.segment_id,
                m.canonical_segment_id,
                m.message_id,
                m.source_id,
                m.event_type,
                m.timestamp,
                m.via.type,
                m.via.value,
                m.rule,
            )
            for m in changes.merges
        ],
        retired=[m.segment_id for m in changes.merges],
        profiles=[
            (
                p.segment_id,
                p.collection,
                p.created_at,
                p.first_message_id,
                p.first_source_id,
                p.updated_at,
                p.last_message_id,
                p.last_source_id,
                p.merges,
            )
            for p in profiles
        ],
        identifiers=list(_identifiers(changes)),
        traits=traits,
        links=links,
        relinked=relinked,
        placements=changes.placements,
        violations=changes.violations,
    )


def _identifiers(changes: Changes) -> Iterator[IdentifierRow]:
    for id, segment_id in changes.claimed.items():
        profile = changes.profiles.get(segment_id)
        identifier = profile.identifiers.get(id) if profile is not None else None
        if identifier is None:  # claimed by a profile merged away later in the batch
            continue
        yield (
            id.type,
            id.value,
            segment_id,
            identifier.source_id,
            identifier.first_message_id,
            identifier.created_at,
        )
