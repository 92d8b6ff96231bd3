"""The identity stage: the event store → the identity graph in ``profiles.db``.

A downstream consumer like the warehouse loader: it keeps its own position (by event-store
``seq``) inside the profiles store and commits it in the same transaction as the graph changes
the batch made, so a crash replays the batch and never applies it twice.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec

from mainstem.errors import RetryLater
from mainstem.identity.cache import CachedState, Changes
from mainstem.identity.graph import Event, resolve
from mainstem.identity.identifiers import CustomIdentifier
from mainstem.identity.rows import rows_of
from mainstem.identity.rules import Rules
from mainstem.identity.spec import IdentitySpec
from mainstem.identity.store import ProfileStore
from mainstem.storage import EventQuery, EventRow, PipelineStore

log = logging.getLogger(__name__)

_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class ResolveResult:
    events: int
    profiles_created: int = 0
    merges: int = 0
    dropped: int = 0
    last_seq: int = 0


class Resolver:
    """Resolves batches of stored events into ``profiles``. One per profiles store."""

    def __init__(
        self,
        store: PipelineStore,
        profiles: ProfileStore,
        *,
        rules: Rules | None = None,
        custom: Sequence[CustomIdentifier] = (),
        batch_events: int = 10_000,
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.rules = rules or Rules()
        self.custom = tuple(custom)
        self.batch_events = batch_events
        self.state = CachedState(profiles)
        self.position: int | None = None
        """The last committed event-store seq this resolver knows of."""
        self.generation = 0

    def run_once(self) -> ResolveResult:
        """Resolve the next batch after the committed position and commit it; ``events == 0``
        when caught up.

        Raises:
            RetryLater: the profiles store is busy or another resolver moved the position;
                nothing was written.
        """
        with _collector_paused():
            position = self._committed_position()
            try:
                batch = self._resolve(position)
                if batch is None:
                    return ResolveResult(0, last_seq=position)
                result, changes = batch
                self.profiles.commit(changes, result.last_seq, position)
            except BaseException:
                self.state.reset(rescan=True)  # see sync()
                raise
            self._committed(result.last_seq)
            return result

    def sync(self, stop: threading.Event | None = None) -> int:
        """Resolve until caught up (or, after a batch, ``stop`` is set); returns how many
        events.

        Pipelined: while a writer thread commits batch *n* (SQLite runs the write without the
        GIL), this thread reads and resolves batch *n + 1* against its cache, which already
        holds *n*'s changes; lookups of what the cache lacks read committed state, which *n*
        did not touch. Commits stay one at a time and in order, each with its position, so a
        crash still replays exactly the uncommitted batches.

        Raises:
            RetryLater: as :meth:`run_once`; the batches before the failed one are committed.
        """
        total = 0
        with (
            _collector_paused(),
            ThreadPoolExecutor(1, thread_name_prefix="identity-writer") as writer,
        ):
            pending: Future[None] | None = None
            try:
                position = self._committed_position()
                while True:
                    batch = self._resolve(position)
                    if pending is not None:
                        pending.result()  # the previous batch is committed (or this raises)
                        pending = None
                        # Not emptied here even when full: it holds the batch just resolved,
                        # which the store does not know yet.
                        self.position = position
                    if batch is None:
                        return total
                    result, changes = batch
                    changes.rows = rows_of(changes)  # before the next batch changes profiles
                    pending = writer.submit(
                        self.profiles.commit, changes, result.last_seq, position
                    )
                    total += result.events
                    position = result.last_seq
                    done = result.events < self.batch_events or (stop is not None and stop.is_set())
                    if done or self.state.full():
                        pending.result()
                        pending = None
                        self._committed(position)
                        if done:
                            return total
            except BaseException:
                if pending is not None:
                    with contextlib.suppress(BaseException):
                        pending.result()  # never reset the cache under a running commit
                # Nothing remembered is trusted after a failure: if the commit failed because
                # another writer moved the position, its identifiers are not in the filter.
                self.state.reset(rescan=True)
                raise

    def _resolve(self, position: int) -> tuple[ResolveResult, Changes] | None:
        """Resolve the batch after ``position`` into the cache; ``None`` when caught up."""
        generation = self.profiles.generation()
        if generation != self.generation:  # profiles were deleted or split: the cache is stale
            self.state.reset(rescan=True)
            self.generation = generation
        rows = self.store.events(EventQuery(after=position, limit=self.batch_events))
        if not rows:
            return None
        created = merges = dropped = 0
        collecting = self.state.changes
        events = self._events(rows)
        self.state.prefetch(id for _, event in events for id in event.identifiers())
        for seq, event in events:
            result = resolve(self.state, self.rules, event)
            created += len(result.created)
            merges += len(result.merges)
            dropped += len(result.dropped)
            collecting.place(seq, event, result)
        last = rows[-1].seq
        changes = self.state.take()
        changes.generation = generation
        return ResolveResult(len(rows), created, merges, dropped, last), changes

    def _committed_position(self) -> int:
        """The position in profiles.db. If another writer moved it since this resolver's last
        commit, nothing this resolver remembers (cached profiles, which identifiers exist) is
        trusted any more."""
        position = self.profiles.position()
        if self.position is not None and position != self.position:
            self.state.reset(rescan=True)
        self.position = position
        return position

    def _committed(self, position: int) -> None:
        """Everything resolved is committed up to ``position``: the cache holds nothing the
        store lacks, so it may be emptied if it has outgrown its bound."""
        self.position = position
        if self.state.full():
            self.state.reset()

    def _events(self, rows: Sequence[EventRow]) -> list[tuple[int, Event]]:
        events: list[tuple[int, Event]] = []
        for row in rows:
            try:
                message = _decode(row.body)
            except msgspec.DecodeError:
                log.error("identity: stored event %d is not JSON; skipped", row.seq)
                continue
            if isinstance(message, dict):
                event = Event.from_message(message, row.source_id, row.received_at, self.custom)
                events.append((row.seq, event))
        return events

    def run(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Resolve until ``stop`` is set, :meth:`sync` ing and then waiting ``interval``.
        Failures are logged and retried after ``interval``; the position makes the retry
        exact."""
        while not stop.is_set():
            try:
                self.sync(stop)
            except RetryLater as exc:
                log.info("identity resolution postponed: %s", exc)
            except Exception:
                log.exception("identity resolution failed; retrying in %.1fs", interval)
            stop.wait(interval)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one batch.

    A batch allocates several objects per event and keeps most of them (the cache), so the
    collector would walk the growing cache again and again: measured, it doubled the time of a
    batch. Objects are still freed by reference counting meanwhile; the graph makes no cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def start(
    data_dir: Path,
    store: PipelineStore,
    stop: threading.Event,
    *,
    enabled: bool = True,
    fsync: bool = True,
    interval: float = 1.0,
    batch_events: int = 10_000,
    spec: IdentitySpec | None = None,
) -> threading.Thread | None:
    """Run a :class:`Resolver` over ``<data_dir>/profiles.db`` on a daemon thread until ``stop``
    is set (``None`` when identity resolution is off). The caller joins the thread."""
    if not enabled:
        return None
    from mainstem.identity.sqlite import FILE_NAME, SqliteProfileStore

    profiles = SqliteProfileStore(data_dir / FILE_NAME, fsync=fsync)
    log.info("profiles store: %s", profiles.path)
    return start_with(
        profiles, store, stop, interval=interval, batch_events=batch_events, spec=spec
    )


def start_with(
    profiles: ProfileStore,
    store: PipelineStore,
    stop: threading.Event,
    *,
    interval: float = 1.0,
    batch_events: int = 10_000,
    spec: IdentitySpec | None = None,
) -> threading.Thread:
    """Run a :class:`Resolver` over ``profiles`` (any backend) on a daemon thread until ``stop``
    is set; the thread closes ``profiles`` when it ends. The caller joins the thread."""
    spec = spec or IdentitySpec()
    resolver = Resolver(
        store, profiles, rules=spec.rules, custom=spec.custom, batch_events=batch_events
    )

    def run() -> None:
        log.info("identity resolver started (%s)", type(profiles).__name__)
        try:
            resolver.run(stop, interval=interval)
        finally:
            profiles.close()

    thread = threading.Thread(target=run, name="identity", daemon=True)
    thread.start()
    return thread


def wait_until(profiles: ProfileStore, seq: int, timeout: float) -> bool:
    """Poll until the resolver has passed ``seq`` (for tests and the CLI)."""
    deadline = time.monotonic() + timeout
    while profiles.position() < seq:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
