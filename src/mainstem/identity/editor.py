"""Changes to ``profiles.db`` asked for over HTTP (unmerge, identifier deletion).

The server reads profiles.db read-only; the resolver in the processor is its usual writer. An
edit opens its own writing connection for the length of the call: SQLite's lock orders it with
the resolver's commits, and the generation it bumps makes the resolver drop its cache.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mainstem.identity import report
from mainstem.identity.graph import Profile
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.spec import IdentitySpec
from mainstem.identity.sqlite import SqliteProfileStore
from mainstem.identity.unmerge import Split
from mainstem.storage import PipelineStore


class ProfileEditor:
    def __init__(
        self,
        path: Path,
        events: Callable[[], PipelineStore],
        spec: Callable[[], IdentitySpec],
        *,
        fsync: bool = True,
    ) -> None:
        self.path = path
        self.events = events
        self.spec = spec
        self.fsync = fsync

    def _open(self) -> SqliteProfileStore:
        return SqliteProfileStore(self.path, fsync=self.fsync)

    def unmerge(self, segment_id: str) -> Split:
        """See :func:`.report.unmerge`."""
        spec = self.spec()
        store = self._open()
        try:
            return report.unmerge(
                store, self.events(), segment_id, rules=spec.rules, custom=spec.custom
            )
        finally:
            store.close()

    def delete_identifier(self, ref: str, id: ExternalId) -> Profile:
        """See :func:`.report.delete_identifier`."""
        store = self._open()
        try:
            return report.delete_identifier(store, ref, id)
        finally:
            store.close()
