"""A :class:`~mainstem.identity.graph.GraphState` over a persistent store: reads fall through to
the store, changes collect in memory until the stage commits them with its position.

Pure: the store is reached through the two-method :class:`Lookup` port. After a failed commit
the stage calls :meth:`CachedState.reset`, because the cached profiles hold changes that were
never written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mainstem.identity.graph import Event, Merge, Profile, Resolution, random_segment_id
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.seen import Seen

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

    def identifier_keys(self) -> Iterator[tuple[str, str]]:
        """Every identifier a profile holds, as ``(type, value)``, in no particular order."""
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
        self._seen: Seen | None = None
        """Every identifier the store holds or this cache has claimed (filled on first use)."""
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
        seen = self._filled()
        found = self.lookup.owners(seen.maybe(unknown))
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

    def _filled(self) -> Seen:
        """The filter of identifiers that may be taken, (re)filled from the store and this
        cache's claims when missing or outgrown."""
        seen = self._seen
        if seen is None or seen.full():
            seen = Seen(2 * seen.count if seen is not None else 0)
            seen.update(self.lookup.identifier_keys())
            # Claimed here but maybe not committed yet (a batch the writer still holds):
            seen.update(id for id, owner in self._owners.items() if owner)
            self._seen = seen
        return seen

    def retire(self, merge: Merge) -> None:
        self._profiles.pop(merge.segment_id, None)
        self.changes.profiles.pop(merge.segment_id, None)
        self.changes.merges.append(merge)

    def new_segment_id(self, collection: str) -> str:
        return random_segment_id(collection)

    def take(self) -> Changes:
        """The collected changes (the caller commits them); the cache keeps its contents."""
        changes, self.changes = self.changes, Changes()
        if self._seen is not None:  # the batch's prefetch is done: its claims count from now
            self._seen.update(changes.claimed)
        return changes

    def full(self) -> bool:
        """The cache has grown past ``max_profiles``: once the changes it holds are committed,
        the caller :meth:`reset` s it (reads then fall through to the store again)."""
        return len(self._profiles) > self.max_profiles or len(self._owners) > 4 * self.max_profiles

    def reset(self, *, rescan: bool = False) -> None:
        """Forget the cached profiles: after a failed commit they are ahead of the store. With
        ``rescan``, forget which identifiers the store holds too: another writer (an unmerge,
        a delete, another resolver) may have changed them."""
        self._profiles.clear()
        self._owners.clear()
        self.changes = Changes()
        if rescan:
            self._seen = None
