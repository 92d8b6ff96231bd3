"""The delivery state on PostgreSQL: every worker sees every destination's cursor, attempts and
dead letters, and the cursor of a destination moves only for the worker holding its delivery
lease (:class:`~mainstem.storage.postgres.leases.WorkerLeases`).

A worker that was paused or cut off while the destination moved to another worker may still
finish sending its batch (at-least-once: the new holder sends it again), but its
:meth:`~mainstem.destinations.state.SqlDeliveryState.advance` raises
:class:`~mainstem.errors.LeaseLost` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from mainstem.destinations.state import Row, Run, SqlDeliveryState
from mainstem.errors import LeaseLost
from mainstem.storage.postgres.connection import Connections


class PostgresDeliveryState(SqlDeliveryState):
    """The tables come with the pipeline's migrations (``pipeline/0003_delivery``): open a
    :class:`~mainstem.storage.postgres.pipeline.PostgresPipelineStore` first. ``owner`` is the
    worker's lease token; without it (readers, ``mainstem replay``) the cursor is not fenced."""

    def __init__(self, url: str, *, owner: str | None = None) -> None:
        self.owner = owner
        self._conns = Connections(url)

    def _read(self, query: str, params: Sequence[object] = ()) -> list[Row]:
        return self._conns.fetch(_postgres(query), params)

    @contextmanager
    def _transaction(self) -> Iterator[Run]:
        with self._conns.transaction() as conn:

            def run(query: str, params: Sequence[object]) -> list[Row]:
                cursor = conn.execute(_postgres(query), params)
                return cursor.fetchall() if cursor.description is not None else []

            yield run

    def _fence(self, run: Run, destination: str) -> None:
        if self.owner is None:
            return
        if not run(
            "SELECT 1 FROM task_leases WHERE task = ? AND owner = ? FOR UPDATE",
            (task(destination), self.owner),
        ):
            raise LeaseLost(
                f"destination {destination} is delivered by another worker now; "
                "this worker's batch will be sent again by it"
            )

    def close(self) -> None:
        """Idempotent."""
        self._conns.close()


def task(destination: str) -> str:
    """The worker task (lease) that delivers to ``destination``."""
    return f"destination:{destination}"


def _postgres(query: str) -> bytes:
    """The shared statements use ``?``; psycopg wants ``%s``."""
    return query.replace("?", "%s").encode()
