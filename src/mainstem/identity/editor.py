"""Changes to the profiles store asked for over HTTP (unmerge, identifier deletion).

The server reads the profiles store read-only; the resolver in the processor is its usual
writer. An edit opens its own writing store for the length of the call: the database orders it
with the resolver's commits (SQLite's write lock; on PostgreSQL the position row lock), and the
generation it bumps makes the resolver drop its cache.
"""

from __future__ import annotations

from collections.abc import Callable

from mainstem.identity import report
from mainstem.identity.graph import Profile
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.spec import IdentitySpec
from mainstem.identity.store import ProfileStore
from mainstem.identity.unmerge import Split
from mainstem.storage import PipelineStore


class ProfileEditor:
    def __init__(
        self,
        open: Callable[[], ProfileStore],
        events: Callable[[], PipelineStore],
        spec: Callable[[], IdentitySpec],
    ) -> None:
        """``open``: a writable profiles store, closed after each edit."""
        self._open = open
        self.events = events
        self.spec = spec

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
