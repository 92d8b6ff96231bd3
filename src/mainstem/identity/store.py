"""The profiles store port: what identity resolution and the Profile API need from a database.

A backend (``identity/sqlite.py``, ``identity/postgres.py``) keeps live profiles, their identifiers,
traits (each with the event time of its value), links, the merge history, where every event
landed, and the resolver's position in the event store — committed together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mainstem.errors import RetryLater
from mainstem.identity.cache import Changes
from mainstem.identity.graph import Drop, Merge, Profile
from mainstem.identity.identifiers import ExternalId

if TYPE_CHECKING:  # unmerge reads this module's records
    from mainstem.identity.unmerge import Split


@dataclass(frozen=True, slots=True)
class PlacedEvent:
    seq: int
    segment_id: str
    """The profile at ingestion; resolve it through the merges for today's profile."""
    message_id: str
    type: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class Violation:
    seq: int
    message_id: str
    segment_id: str | None
    drop: Drop


@dataclass(frozen=True, slots=True)
class Unmerge:
    seq: int
    """Event-store seq of the merging message, now kept out of identity."""
    message_id: str
    segment_id: str
    """The profile split back off."""
    canonical_segment_id: str
    """The profile it had been merged into."""
    at: int
    """When the unmerge ran (µs, wall clock)."""


class ProfileStore(Protocol):
    def position(self) -> int:
        """The last event-store seq whose effects are committed (0 when none)."""
        ...

    def owner(self, id: ExternalId) -> str | None:
        """The live profile holding ``id``."""
        ...

    def load(self, segment_id: str) -> Profile | None:
        """The live profile with identifiers, traits and links; ``None`` when unknown or merged
        away."""
        ...

    def owners(self, ids: Sequence[ExternalId]) -> dict[ExternalId, str]:
        """:meth:`owner` of many identifiers in a few queries; unheld ones are left out."""
        ...

    def load_many(self, segment_ids: Sequence[str]) -> dict[str, Profile]:
        """:meth:`load` of many profiles in a few queries; unknown ones are left out."""
        ...

    def identifier_keys(self) -> Iterator[tuple[str, str]]:
        """Every identifier a live profile holds, as ``(type, value)``, in no particular order."""
        ...

    def generation(self) -> int:
        """Bumped by every :meth:`delete` and :meth:`split`: a resolver that sees it change drops
        its cache."""
        ...

    def commit(self, changes: Changes, position: int, expected: int) -> None:
        """Atomically write ``changes`` and move the position from ``expected`` to ``position``.

        Raises:
            RetryLater: the position is not ``expected`` (another resolver moved it), the
                generation is not ``changes.generation`` (a profile was deleted meanwhile) or
                the database is busy; nothing was written and the caller resets its cache.
        """
        ...

    def delete(self, segment_id: str) -> int:
        """Delete live profile ``segment_id`` and everything about it: identifiers, traits,
        links, merges into it, its event placements and violations; bump the generation.
        Returns how many profiles (it and those merged into it) were removed."""
        ...

    def delete_identifier(self, segment_id: str, id: ExternalId) -> bool:
        """Take ``id`` off live profile ``segment_id`` (its traits, events and merges stay);
        ``False`` when the profile does not hold it. Bumps the generation."""
        ...

    def split(self, split: Split, *, position: int, generation: int) -> None:
        """Replace the component ``split`` replayed, if position and generation are still
        those the split was planned at.

        Raises:
            RetryLater: they moved (plan the split again) or the database is busy; nothing
                was written.
        """
        ...

    def kept_out(self, id: ExternalId) -> list[str]:
        """Profiles with events that carried ``id`` but were kept from taking it."""
        ...

    def canonical(self, segment_id: str) -> str | None:
        """The live profile ``segment_id`` belongs to now, following merges."""
        ...

    def members(self, segment_id: str) -> list[str]:
        """``segment_id`` and every profile merged into it, recursively."""
        ...

    def events(
        self, segment_ids: list[str], *, limit: int, before: int | None = None
    ) -> list[PlacedEvent]:
        """Events placed on any of ``segment_ids``, newest seq first, below ``before``."""
        ...

    def merges(self, segment_ids: list[str]) -> list[Merge]:
        """Merges into any of ``segment_ids``, oldest first."""
        ...

    def unmerges(self, segment_ids: list[str]) -> list[Unmerge]:
        """Unmerges that split any of ``segment_ids`` off or out of another, oldest first."""
        ...

    def violations(self, segment_ids: list[str], limit: int = 100) -> list[Violation]:
        """Identifiers dropped by merge protection on events placed on ``segment_ids``."""
        ...

    def count(self) -> dict[str, int]:
        """Live profiles per collection."""
        ...

    def close(self) -> None:
        """Idempotent."""
        ...


def check_commit(
    where: str, scope: str, *, position: int, expected: int, generation: int, resolved: int
) -> None:
    """The checks :meth:`ProfileStore.commit` makes, holding the store's write lock, before it
    writes anything.

    Args:
        where: the store, as messages name it (``profiles.db``).
        scope: what one resolver runs on (``this data directory``).
        position: the committed position; ``expected`` is the one the batch started from.
        generation: the committed generation; ``resolved`` is the one the batch was resolved
            against (``Changes.generation``).

    Raises:
        RetryLater: see :meth:`ProfileStore.commit`.
    """
    if position != expected:
        raise RetryLater(
            f"{where}: the resolver position is {position}, expected {expected} "
            f"— another resolver is running on {scope}"
        )
    if generation != resolved:
        raise RetryLater(
            f"{where}: a profile was deleted while this batch was resolved — resolving it again"
        )


def check_split(where: str, counters: tuple[int, int], planned: tuple[int, int]) -> None:
    """The check :meth:`ProfileStore.split` makes, holding the store's write lock: the
    committed ``(position, generation)`` are still those the split was ``planned`` at.

    Raises:
        RetryLater: they moved; plan the split again.
    """
    if counters != planned:
        raise RetryLater(
            f"{where}: the resolver committed while the unmerge was planned — planning it again"
        )
