"""Singleton tasks of the PostgreSQL workers: work that must run on exactly one worker of the
cluster at a time — each destination's courier, the warehouse loader — started and stopped as
the worker's task leases (:meth:`~mainstem.storage.postgres.leases.WorkerLeases.heartbeat`)
come and go.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Handle(Protocol):
    """A started task (a :class:`threading.Thread` is one)."""

    def is_alive(self) -> bool: ...

    def join(self) -> None:
        """Wait for the task to finish after its stop event was set."""
        ...


Start = Callable[[threading.Event], Handle]
"""Start a task with its own stop event."""


class Tasks:
    """The tasks one worker can run, by name, and the ones it runs now."""

    def __init__(self, starts: Mapping[str, Start]) -> None:
        self.starts = dict(starts)
        self._running: dict[str, tuple[threading.Event, Handle]] = {}
        self._ending: list[Handle] = []

    @property
    def names(self) -> list[str]:
        """Every task this worker can run (the leases it asks for)."""
        return list(self.starts)

    @property
    def running(self) -> list[str]:
        return sorted(self._running)

    def hold(self, held: Sequence[str]) -> None:
        """Run exactly the ``held`` tasks: stop the others, (re)start those not running."""
        for name in set(self._running) - set(held):
            log.info("task %s moved to another worker", name)
            self._end(name)
        for name in held:
            if name in self._running and not self._running[name][1].is_alive():
                self._end(name)  # it ended by itself (it lost its lease): start it again
            if name not in self._running and name in self.starts:
                stop = threading.Event()
                self._running[name] = (stop, self.starts[name](stop))
                log.info("task %s runs on this worker", name)

    def _end(self, name: str) -> None:
        stop, handle = self._running.pop(name)
        stop.set()
        self._ending.append(handle)

    def close(self) -> None:
        """Stop every task and wait for each; idempotent."""
        for name in list(self._running):
            self._end(name)
        for handle in self._ending:
            handle.join()
        self._ending.clear()
