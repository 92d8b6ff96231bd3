"""The warehouse loader: the event store → micro-batches → the warehouse.

Exactly-once: the loader's position in the event store (by ``seq``) is kept *inside* the
warehouse and committed in the same transaction as the rows it covers, so a crash anywhere
replays the whole batch and never doubles it; rows whose ``id`` is already in the table (same
``received_at`` window) are skipped as a second guard, which also makes backfills safe.
DDL runs first, one idempotent step per transaction, and is recorded in the schema history.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from mainstem.errors import RetryLater
from mainstem.storage import EventQuery, EventRow, PipelineStore
from mainstem.warehouse import batch, naming
from mainstem.warehouse.batch import TableKey
from mainstem.warehouse.columnar import Columnar, parse
from mainstem.warehouse.dialects import Dialect, LoadRecord, Session
from mainstem.warehouse.rows import UPSERTED, Kind, Row, patches, rows
from mainstem.warehouse.schema import MAX_COLUMNS, Catalog, Plan, plan
from mainstem.warehouse.types import LogicalType

log = logging.getLogger(__name__)

HOLD = 1.0
"""Seconds one warehouse session may serve consecutive full batches before it is closed and
reopened (see :meth:`Loader.sync`)."""

Checkpoint = Callable[[str], None]
"""Called with the name of each step before it runs (``ddl: …``, ``insert: web.tracks``,
``discards``, ``finish``, ``commit``); the crash tests raise from it to stop a load anywhere."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    events: int
    rows: int = 0
    duplicates: int = 0
    discards: int = 0
    schema_changes: int = 0
    last_seq: int = 0
    columnar: bool = False
    """Whether the columnar path loaded the batch (its users/accounts patches may still have
    gone per message)."""


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one load. A batch makes some hundred thousand
    dicts and tuples that all live until the load ends, so every collection that their creation
    triggers walks them and frees nothing: here that was about a quarter of a load's time. It runs
    again as soon as the load ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decode(rows: list[EventRow]) -> tuple[list[tuple[str, Any]], list[tuple[str, str, Any]]]:
    good: list[tuple[str, Any]] = []
    bad: list[tuple[str, str, Any]] = []
    for row in rows:
        try:
            message = msgspec.json.decode(row.body)
        except msgspec.DecodeError as exc:
            bad.append((naming.schema(row.source_id), f"stored event {row.seq}: {exc}", {}))
            continue
        good.append((row.source_id, message))
    return good, bad


def _collect(
    events: list[EventRow], make: Callable[[Mapping[str, Any]], list[Row]] = rows
) -> batch.Collected:
    """The per-message path's view of ``events`` (``make``: see :func:`batch.collect`)."""
    messages, bad = _decode(events)
    collected = batch.collect(messages, make)
    collected.unloadable.extend(bad)
    return collected


@dataclass(slots=True)
class Split:
    """A batch between the columnar path (:mod:`mainstem.warehouse.columnar`) and the
    per-message one (:mod:`mainstem.warehouse.batch`); pure, the loader asks the warehouse."""

    events: list[EventRow]
    allow_nul: bool
    fast: Columnar | None
    collected: batch.Collected

    @classmethod
    def of(cls, events: list[EventRow], allow_nul: bool, *, columnar: bool = True) -> Split:
        fast = parse(events, allow_nul) if columnar else None
        if fast is None:
            return cls(events, allow_nul, fast, _collect(events))
        return cls(events, allow_nul, fast, _collect(fast.rest, patches))

    def schemas(self) -> list[str]:
        """The schemas the batch loads into, for the catalog query."""
        schemas = {schema for schema, _ in self.collected.tables}
        if self.fast is not None:
            schemas.update(schema for schema, _ in self.fast.tables)
        return sorted(schemas)

    def plan(self, schemas: set[str], catalog: Catalog, max_columns: int = MAX_COLUMNS) -> Plan:
        """The batch's DDL against this catalog. The whole batch goes to the per-message path
        if the columnar one cannot load its part exactly, or a table of that part is full
        (``too_many_columns`` is decided per message)."""
        if self.fast is not None and not self.fast.fits(schemas, catalog):
            self._per_message()
        planned = plan(schemas, catalog, self.inferred(), max_columns)
        if self.fast is not None and any(
            (schema, table) in self.fast.tables for schema, table, _ in planned.overflow
        ):
            self._per_message()
            planned = plan(schemas, catalog, self.inferred(), max_columns)
        return planned

    def _per_message(self) -> None:
        self.fast, self.collected = None, _collect(self.events)

    def inferred(self) -> dict[TableKey, tuple[Kind, dict[str, LogicalType]]]:
        inferred = self.collected.inferred()
        if self.fast is None:
            return inferred
        inferred.update(self.fast.inferred())
        first = self._first()
        return dict(
            sorted(inferred.items(), key=lambda item: (first[item[0]], item[1][0] in UPSERTED))
        )

    def _first(self) -> dict[TableKey, int]:
        assert self.fast is not None
        return self.fast.order({key: t.kind for key, t in self.collected.tables.items()})

    def windows(self) -> dict[TableKey, tuple[str, str]]:
        windows = self.collected.windows()
        if self.fast is not None:
            windows.update(self.fast.windows())
        return windows

    def prepare(
        self, planned: Plan, existing: Mapping[TableKey, set[str]], loaded_at: str
    ) -> batch.Prepared:
        if self.fast is None:
            return batch.prepare(self.collected, planned, existing, loaded_at, self.allow_nul)
        prepared = batch.Prepared()
        fresh = self.fast.prepare(planned, existing, loaded_at, prepared, self.collected.stamps)
        patches = batch.prepare(
            self.collected, planned, existing, loaded_at, self.allow_nul, fresh=fresh
        )
        prepared.loads.extend(patches.loads)
        prepared.discards.extend(patches.discards)
        prepared.rows += patches.rows
        prepared.duplicates += patches.duplicates
        first = self._first()
        prepared.loads.sort(key=lambda load: (load.upsert, first[load.schema, load.table]))
        return prepared


class _Ahead:
    """The next batch, read and split on a second thread while the current one loads. Arrow's
    reader and the engines' inserts and commits release the GIL, so the two overlap. A split
    is pure, and is used only if the position the loader reads next is the one it was made
    after (a failed load, or another loader's, leaves it unused)."""

    def __init__(self, store: PipelineStore, limit: int, allow_nul: bool, columnar: bool) -> None:
        self._store = store
        self._limit = limit
        self._allow_nul = allow_nul
        self._columnar = columnar
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="warehouse-split")
        self._next: tuple[int, Future[tuple[list[EventRow], Split | None]]] | None = None

    def start(self, after: int) -> None:
        """Read and split the batch after position ``after`` in the background."""
        self._next = (after, self._pool.submit(self._split, after))

    def _split(self, after: int) -> tuple[list[EventRow], Split | None]:
        events = self._store.events(EventQuery(after=after, limit=self._limit))
        if not events:
            return events, None
        return events, Split.of(events, self._allow_nul, columnar=self._columnar)

    def take(self, position: int) -> tuple[list[EventRow], Split] | None:
        """The batch after ``position`` and its split, if that is the one started and it has
        events."""
        started, self._next = self._next, None
        if started is None or started[0] != position:
            return None
        events, split = started[1].result()
        return None if split is None else (events, split)

    def close(self) -> None:
        self._next = None
        self._pool.shutdown(wait=True, cancel_futures=True)


class Loader:
    """Loads micro-batches from ``store`` into ``dialect``'s warehouse. One per warehouse."""

    def __init__(
        self,
        store: PipelineStore,
        dialect: Dialect,
        *,
        stream: str = "events",
        batch_events: int = 10_000,
        max_columns: int = MAX_COLUMNS,
        checkpoint: Checkpoint | None = None,
        columnar: bool = True,
    ) -> None:
        """``columnar=False`` decides every batch per message: the reference the columnar path
        is tested against, and a way around it should it ever misbehave."""
        self.columnar = columnar
        self.store = store
        self.dialect = dialect
        self.stream = stream
        self.batch_events = batch_events
        self.max_columns = max_columns
        self.checkpoint: Checkpoint = checkpoint or (lambda step: None)
        self.position: int | None = None
        """The last committed position seen, for the backlog probe (the warehouse has the
        truth)."""
        self.last_error: str | None = None

    def run_once(self) -> LoadResult:
        """Load the next micro-batch after the committed position; ``events == 0`` when caught
        up.

        Raises:
            RetryLater: the warehouse is busy or unreachable; nothing was loaded.
        """
        session = self.dialect.connect()
        try:
            session.bootstrap()
            return self._next(session)
        finally:
            session.close()

    def _next(
        self, session: Session, ahead: _Ahead | None = None, position: int | None = None
    ) -> LoadResult:
        """Load the batch after ``position`` (default: the committed one, read from the
        warehouse; the load checks it again in its transaction either way)."""
        if position is None:
            position = session.position(self.stream)
        self.position = position
        with _collection_paused():
            taken = ahead.take(position) if ahead is not None else None
            if taken is None:
                events = self.store.events(EventQuery(after=position, limit=self.batch_events))
                split = None
            else:
                events, split = taken
            if not events:
                return LoadResult(0, last_seq=position)
            if ahead is not None and len(events) == self.batch_events:
                ahead.start(events[-1].seq)
            result = self._load(session, events, move=True, expected=position, split=split)
        self.position = result.last_seq
        return result

    def sync(self, stop: threading.Event | None = None) -> int:
        """Load until caught up (or ``stop`` is set); returns how many events.

        Full batches in a row share one warehouse session for up to :data:`HOLD` seconds:
        opening and closing a DuckDB file (which checkpoints it) cost about as much as loading
        a tenth of a batch, and a reader waiting for the file gets it at the next reopen.

        Raises:
            RetryLater: the warehouse is busy or unreachable.
        """
        total = 0
        ahead = _Ahead(self.store, self.batch_events, self.dialect.allow_nul, self.columnar)
        try:
            while True:
                session = self.dialect.connect()
                try:
                    session.bootstrap()
                    opened = time.monotonic()
                    position = None
                    while True:
                        result = self._next(session, ahead, position)
                        position = result.last_seq  # this session's own commit
                        total += result.events
                        done = stop is not None and stop.is_set()
                        if result.events < self.batch_events or done:
                            return total
                        if time.monotonic() - opened >= HOLD:
                            break
                finally:
                    session.close()
        finally:
            ahead.close()

    def backfill(
        self, since: int | None = None, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Load every stored event received at or after ``since`` (µs) again; rows already in
        the warehouse are skipped, the position is left alone. ``progress(done, total)`` is
        called in units of event-store seq."""
        newest = self.store.events(EventQuery(limit=1))
        first = self.store.events(EventQuery(after=0, since=since, limit=1))
        if not newest or not first:
            return 0
        start, end = first[0].seq - 1, newest[0].seq
        cursor, total = start, 0
        while cursor < end:
            events = self.store.events(
                EventQuery(after=cursor, since=since, limit=self.batch_events)
            )
            events = [event for event in events if event.seq <= end]
            if not events:
                break
            session = self.dialect.connect()
            try:
                session.bootstrap()
                self._load(session, events, move=False)
            finally:
                session.close()
            cursor = events[-1].seq
            total += len(events)
            if progress is not None:
                progress(cursor - start, end - start)
        return total

    def _load(
        self,
        session: Session,
        events: list[EventRow],
        *,
        move: bool,
        expected: int = 0,
        split: Split | None = None,
    ) -> LoadResult:
        with _collection_paused():
            return self._load_batch(session, events, move=move, expected=expected, split=split)

    def _load_batch(
        self,
        session: Session,
        events: list[EventRow],
        *,
        move: bool,
        expected: int,
        split: Split | None,
    ) -> LoadResult:
        started = now_text()
        load_id = uuid.uuid4().hex[:16]
        stream = self.stream if move else f"{self.stream}:backfill"
        first_seq, last_seq = events[0].seq, events[-1].seq
        changes = 0
        try:
            if split is None:
                split = Split.of(events, self.dialect.allow_nul, columnar=self.columnar)
            existing_schemas, catalog = session.catalog(split.schemas())
            planned = split.plan(existing_schemas, catalog, self.max_columns)
            inferred = split.inferred()
            for step in planned.steps:
                self.checkpoint(f"ddl: {step.describe()}")
                session.apply(step, load_id, now_text())
                changes += 1
            existing = {
                key: session.existing_ids(key[0], key[1], lowest, highest)
                for key, (lowest, highest) in split.windows().items()
                if key in catalog and inferred[key][0] not in UPSERTED
            }
            loaded_at = now_text()
            prepared = split.prepare(planned, existing, loaded_at)
            session.begin()
            if move and session.position(self.stream) != expected:
                session.rollback()  # another loader committed this batch meanwhile
                return LoadResult(0, last_seq=session.position(self.stream))
            for load in prepared.loads:
                verb = "upsert" if load.upsert else "insert"
                self.checkpoint(f"{verb}: {load.schema}.{load.table}")
                if load.upsert:
                    session.upsert(load)
                else:
                    session.insert(load)
            self.checkpoint("discards")
            session.insert_discards(load_id, loaded_at, prepared.discards)
            record = LoadRecord(
                load_id,
                stream,
                started,
                now_text(),
                first_seq,
                last_seq,
                len(events),
                prepared.rows,
                prepared.duplicates,
                len(prepared.discards),
                changes,
                "ok",
            )
            self.checkpoint("finish")
            session.finish(self.stream, last_seq if move else None, record)
            self.checkpoint("commit")
            session.commit()
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            session.rollback()
            self._record_failure(session, load_id, stream, started, events, changes, exc)
            raise
        self.last_error = None
        log.info(
            "warehouse load %s: %d events → %d rows (%d duplicates, %d discards, %d schema "
            "changes), seq %d-%d",
            load_id,
            len(events),
            prepared.rows,
            prepared.duplicates,
            len(prepared.discards),
            changes,
            first_seq,
            last_seq,
        )
        return LoadResult(
            len(events),
            prepared.rows,
            prepared.duplicates,
            len(prepared.discards),
            changes,
            last_seq,
            split.fast is not None,
        )

    def _record_failure(
        self,
        session: Session,
        load_id: str,
        stream: str,
        started: str,
        events: list[EventRow],
        changes: int,
        exc: Exception,
    ) -> None:
        """Best effort: the failure goes to the load history in a transaction of its own."""
        record = LoadRecord(
            load_id,
            stream,
            started,
            now_text(),
            events[0].seq,
            events[-1].seq,
            len(events),
            0,
            0,
            0,
            changes,
            "failed",
            f"{type(exc).__name__}: {exc}",
        )
        try:
            session.begin()
            session.finish(self.stream, None, record)
            session.commit()
        except Exception:
            log.debug("could not record the failed load %s", load_id, exc_info=True)
            session.rollback()

    def backlog_full(self) -> bool:
        """Whether at least a batch of events waits past the last known position."""
        if self.position is None:
            return True
        probe = EventQuery(after=self.position + self.batch_events - 1, limit=1)
        return bool(self.store.events(probe))

    def run(self, stop: threading.Event, *, interval: float = 10.0, poll: float = 1.0) -> None:
        """Load every ``interval`` seconds, or sooner when a full batch is waiting, until
        ``stop`` is set. Failures are logged and retried at the next interval."""
        due = 0.0
        while not stop.is_set():
            if time.monotonic() >= due or self.backlog_full():
                try:
                    self.sync(stop)
                except RetryLater as exc:
                    log.info("warehouse load postponed: %s", exc)
                except Exception:
                    log.exception("warehouse load failed; retrying in %.0fs", interval)
                due = time.monotonic() + interval
            stop.wait(min(poll, interval))
