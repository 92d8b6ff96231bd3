"""The table rows a batch of graph changes writes, as plain tuples.

Built on the resolver's thread from the profiles the batch changed, so a store may write them on
another thread while the resolver already changes those same profiles for the next batch: the
rows hold only strings and numbers, never a profile. Building them marks the profiles written
(``changed`` and ``relinked`` are cleared): after a failed commit the resolver drops its cache.

Pure: no database here; the column order is that of the profiles store's tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from mainstem.identity.cache import Changes
from mainstem.identity.graph import Drop, Identifier, Merge, Profile
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.store import Violation
from mainstem.identity.traits import Trait
from mainstem.identity.unmerge import Split

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


# --- the other direction: rows read back, and the rows an unmerge adds ------------------------
# Shared by every profiles store, so they build the same records from the same columns.

UnmergeRow = tuple[int, str, str, str, int]
_decode = msgspec.json.Decoder().decode


def profile_of(row: Sequence[Any]) -> Profile:
    """A profile (without identifiers, traits, links) from a ``profiles`` row."""
    return Profile(
        segment_id=row[0],
        collection=row[1],
        created_at=row[2],
        first_message_id=row[3],
        first_source_id=row[4],
        updated_at=row[5],
        last_message_id=row[6],
        last_source_id=row[7],
        merges=row[8],
    )


def fill(
    found: Mapping[str, Profile],
    identifiers: Iterable[Sequence[Any]],
    traits: Iterable[Sequence[Any]],
    links: Iterable[Sequence[Any]],
) -> None:
    """Add to ``found`` the identifiers (``segment_id, type, value, source_id,
    first_message_id, created_at``, in the order the profile holds them), traits
    (``segment_id, key, value, updated_at, source_id, removed``; ``value`` is JSON text) and
    links (``segment_id, linked``) read for them."""
    for segment_id, type, value, source_id, first_message_id, created_at in identifiers:
        key = ExternalId(type, value)
        found[segment_id].identifiers[key] = Identifier(
            key, source_id, first_message_id, created_at
        )
    for segment_id, key, value, updated_at, source_id, removed in traits:
        found[segment_id].traits[key] = Trait(_decode(value), updated_at, source_id, bool(removed))
    for segment_id, linked in links:
        found[segment_id].links.add(linked)


def merge_of(row: Sequence[Any]) -> Merge:
    """A merge from a ``merges`` row (in :data:`MergeRow` order)."""
    return Merge(
        segment_id=row[0],
        canonical_segment_id=row[1],
        message_id=row[2],
        source_id=row[3],
        event_type=row[4],
        timestamp=row[5],
        via=ExternalId(row[6], row[7]),
        rule=row[8],
    )


def violation_of(row: Sequence[Any]) -> Violation:
    """A violation from a ``violations`` row (in :data:`ViolationRow` order)."""
    return Violation(row[0], row[1], row[2], Drop(ExternalId(row[3], row[4]), row[5], row[6]))


def split_links(split: Split) -> list[tuple[str, str]]:
    """The link rows (``segment_id, linked``) an unmerge adds: from each account to its user
    (the user's side is among the replayed profiles' rows)."""
    return [(account, user) for user, account in split.links]


def unmerge_row(split: Split, at: int) -> UnmergeRow:
    """The ``unmerges`` row recording ``split``, run at ``at`` (µs, wall clock)."""
    merge = split.merge
    return (split.excluded, merge.message_id, merge.segment_id, merge.canonical_segment_id, at)
