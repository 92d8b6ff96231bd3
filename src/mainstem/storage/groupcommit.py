"""Group commit: many requests, one transaction (DESIGN §2, "a 200 means durable").

Request handlers :meth:`GroupCommitter.submit` a record and await the returned future. One writer
thread takes everything queued since its last commit, appends it to the log in one transaction
and resolves all the futures at once, so the cost of a durable commit (an fsync) is shared by
every request that arrived meanwhile. The future fails when the commit fails; the handler then
answers 503 and the client retries, having lost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from mainstem.logrecord import LogRecord
from mainstem.storage import EventLog

log = logging.getLogger(__name__)

_STOP = object()
_Item = tuple[LogRecord, asyncio.Future[int] | None]


class GroupCommitter:
    def __init__(
        self,
        eventlog: EventLog,
        *,
        max_group: int = 4096,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_interval: float = 60.0,
        on_commit: Callable[[int, float], None] | None = None,
    ) -> None:
        self.eventlog = eventlog
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._max_group = max_group
        self._housekeeping = housekeeping
        self._housekeeping_interval = housekeeping_interval
        self._on_commit = on_commit
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._running = False
        self._submitted_bytes = 0  # written by the submitting (event loop) thread only
        self._settled_bytes = 0  # written by the writer thread only

    def start(self) -> None:
        self._running = True
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._running and self._thread.is_alive()

    def submit(self, record: LogRecord, loop: asyncio.AbstractEventLoop) -> asyncio.Future[int]:
        """Queue ``record``; the future resolves to its seq once it is durable."""
        future: asyncio.Future[int] = loop.create_future()
        self._submitted_bytes += len(record.body)
        self._queue.put((record, future))
        return future

    @property
    def pending_bytes(self) -> int:
        """Body bytes queued and not yet committed (or failed). Each counter has one writer, so
        no lock: a reading a moment old is good enough for backpressure."""
        return self._submitted_bytes - self._settled_bytes

    def stop(self) -> None:
        """Commit what is queued, then stop the writer thread. Idempotent."""
        if not self._running:
            return
        self._running = False
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        next_housekeeping = time.monotonic() + self._housekeeping_interval
        while True:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                first = None
            stop = first is _STOP
            group: list[_Item] = [] if first is None or stop else [first]  # type: ignore[list-item]
            while len(group) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    continue
                group.append(item)  # type: ignore[arg-type]
            if group:
                self._commit(group)
            if stop and self._queue.empty():
                return
            if self._housekeeping is not None and time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + self._housekeeping_interval
                try:
                    self._housekeeping()
                except Exception:
                    log.exception("log housekeeping failed; will try again")

    def _commit(self, group: list[_Item]) -> None:
        started = time.perf_counter()
        size = sum(len(record.body) for record, _ in group)
        try:
            last = self.eventlog.append([record for record, _ in group])
        except Exception as exc:
            log.exception("event log append failed for %d records", len(group))
            self._settled_bytes += size
            _settle(group, None, exc)
            return
        self._settled_bytes += size
        if self._on_commit is not None:
            self._on_commit(len(group), time.perf_counter() - started)
        _settle(group, last, None)


def _settle(group: list[_Item], last: int | None, error: BaseException | None) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
    first = (last or 0) - len(group) + 1
    for offset, (_, future) in enumerate(group):
        if future is not None:
            by_loop.setdefault(future.get_loop(), []).append((future, first + offset))
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, futures, error)


def _resolve(futures: list[tuple[asyncio.Future[int], int]], error: BaseException | None) -> None:
    for future, seq in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(seq)
        else:
            future.set_exception(error)
