"""A :class:`~mainstem.identity.graph.GraphState` over a persistent store: reads fall through to
the store, changes collect in memory until the stage commits them with its position.

Pure: the store is reached through the two-method :class:`Lookup` port. After a failed commit
the stage calls :meth:`CachedState.reset`, because the cached profiles hold changes that were
never written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mainstem.identity.graph import Event, Merge, Profile, Resolution, random_segment_id
from mainstem.identity.identifiers import ExternalId

if TYPE_CHECKING:  # rows are built from changes
    from mainstem.identity.rows import PlacementRow, Rows, ViolationRow


class Lookup(Protocol):
    def owner(self, id: ExternalId) -> str | None:
        """The live profile holding ``id`` in committed state."""
        ...

    def load(self, segment_id: str) -> Profile | None:
        """The committed live profile, or ``None``."""
        ...

    def owners(self, ids: Sequence[ExternalId]) -> dict[ExternalId, str]:
        """:meth:`owner` of many identifiers at once; those no profile holds are left out."""
        ...

    def load_many(self, segment_ids: Sequence[str]) -> dict[str, Profile]:
        """:meth:`load` of many profiles at once; unknown ones are left out."""
        ...


@dataclass(slots=True)
class Changes:
    """Everything a batch changed, for one transaction."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    claimed: dict[ExternalId, str] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)
    placements: list[PlacementRow] = field(default_factory=list)
    violations: list[ViolationRow] = field(default_factory=list)
    generation: int = 0
    """The store's generation the batch was resolved against (see ``ProfileStore.delete``)."""
    rows: Rows | None = None
    """Set by the resolver before it hands the changes to a writer thread: the rows to write,
    taken while the profiles were still those of this batch (see ``identity/rows.py``)."""

    def place(self, seq: int, event: Event, result: Resolution) -> None:
        """Record where the stored event ``seq`` landed, and the identifiers it had dropped.
        (Rows straight away: one placement is made per event, and the resolution need not
        outlive it.)"""
        segment_id = result.segment_id or result.account_id
        if segment_id:
            self.placements.append((seq, segment_id, event.message_id, event.type, event.timestamp))
        for drop in result.dropped:
            self.violations.append(
                (
                    seq,
                    event.message_id,
                    result.segment_id,
                    drop.id.type,
                    drop.id.value,
                    drop.reason,
                    drop.rule,
                )
            )


_MISSING = ""


class CachedState:
    def __init__(self, lookup: Lookup, *, max_profiles: int = 200_000) -> None:
        self.lookup = lookup
        self.max_profiles = max_profiles
        self._owners: dict[ExternalId, str] = {}
        self._profiles: dict[str, Profile] = {}
        self.changes = Changes()

    def owner(self, id: ExternalId) -> str | None:
        found = self._owners.get(id)
        if found is None:
            found = self.lookup.owner(id) or _MISSING
            self._owners[id] = found
        return found or None

    def profile(self, segment_id: str) -> Profile:
        found = self._profiles.get(segment_id)
        if found is None:
            found = self.lookup.load(segment_id)
            if found is None:
                raise KeyError(segment_id)
            self._profiles[segment_id] = found
        return found

    def prefetch(self, ids: Iterable[ExternalId]) -> None:
        """Look up the owners of ``ids`` not cached yet, and their profiles, in a few bulk reads
        instead of one query per identifier while resolving."""
        unknown = set(ids).difference(self._owners)  # set operations: loops in C
        if not unknown:
            return
        found = self.lookup.owners(list(unknown))
        self._owners.update(dict.fromkeys(unknown, _MISSING))
        self._owners.update(found)
        wanted = [s for s in dict.fromkeys(found.values()) if s not in self._profiles]
        if wanted:
            self._profiles.update(self.lookup.load_many(wanted))

    def save(self, profile: Profile, claimed: Iterable[ExternalId]) -> None:
        self._profiles[profile.segment_id] = profile
        self.changes.profiles[profile.segment_id] = profile
        for id in claimed:
            self._owners[id] = profile.segment_id
            self.changes.claimed[id] = profile.segment_id

    def retire(self, merge: Merge) -> None:
        self._profiles.pop(merge.segment_id, None)
        self.changes.profiles.pop(merge.segment_id, None)
        self.changes.merges.append(merge)

    def new_segment_id(self, collection: str) -> str:
        return random_segment_id(collection)

    def take(self) -> Changes:
        """The collected changes (the caller commits them); the cache keeps its contents."""
        changes, self.changes = self.changes, Changes()
        return changes

    def full(self) -> bool:
        """The cache has grown past ``max_profiles``: once the changes it holds are committed,
        the caller :meth:`reset` s it (reads then fall through to the store again)."""
        return len(self._profiles) > self.max_profiles or len(self._owners) > 4 * self.max_profiles

    def reset(self) -> None:
        """Forget everything: after a failed commit the cached profiles are ahead of the store."""
        self._profiles.clear()
        self._owners.clear()
        self.changes = Changes()
