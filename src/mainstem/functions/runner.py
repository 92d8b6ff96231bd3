"""A pool of long-lived worker processes for one function file.

Each call borrows an idle worker (starting one when fewer than ``concurrency`` exist), sends one
frame and waits at most ``timeout`` for the reply. A worker that overruns is killed; one that
dies (``os._exit``, ``abort``, a segfault, the kernel's OOM killer) is reaped; either way the
next call starts a fresh one. Nothing a function does can raise out of :meth:`Pool.call`: every
failure comes back as a :class:`~mainstem.functions.outcome.Result`. Workers started before the
file last changed are replaced, so an edited function takes effect without a restart.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mainstem.functions import outcome, protocol
from mainstem.functions.outcome import Result

log = logging.getLogger(__name__)

_STARTUP = 10.0
"""Seconds a worker may take to import the user's file, on top of the call's timeout."""
_STOP = 2.0


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = 5.0
    """Seconds per call (Segment: 5 s)."""
    memory: int = 256 * 1024 * 1024
    """Bytes of address space per worker; 0 for no limit."""
    concurrency: int = 2
    """Most worker processes, and so calls at once, for one function."""


class _Worker:
    def __init__(self, file: Path, memory: int) -> None:
        self.started_at = time.time()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mainstem.functions.child", str(file), str(memory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests = self.process.stdin.fileno()
        self.replies = self.process.stdout.fileno()
        self.handlers: tuple[str, ...] = ()

    def ready(self, seconds: float) -> str | None:
        """Wait up to ``seconds`` for the ready frame; ``None`` when ready, else why not."""
        try:
            frame = protocol.read(self.replies, time.monotonic() + seconds)
        except protocol.TimedOut:
            return f"the worker did not load the file within {seconds:g}s"
        except (protocol.Closed, protocol.TooLarge, ValueError):
            return f"the worker exited while loading the file ({self.reap()})"
        if not isinstance(frame, dict) or frame.get("ready") is not True:
            message = frame.get("message") if isinstance(frame, dict) else None
            return str(message or "the worker could not load the file")
        self.handlers = tuple(str(name) for name in frame.get("handlers") or ())
        return None

    def send(self, request: dict[str, Any]) -> None:
        """Raises:
        protocol.Closed: the worker is gone."""
        protocol.write(self.requests, request)

    def receive(self, deadline: float) -> Any:
        return protocol.read(self.replies, deadline)

    def reap(self) -> str:
        """Wait for a worker that is exiting (kill it if it lingers); how it ended."""
        try:
            code = self.process.wait(_STOP)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._close_pipes()
        return exit_text(code)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._close_pipes()

    def stop(self) -> None:
        """Close its request pipe (it exits at end of file); kill it if it does not."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.reap()

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Pool:
    """The worker processes of one function file. Thread-safe; :meth:`call` blocks."""

    def __init__(self, file: Path, limits: Limits = Limits(), *, name: str = "") -> None:
        self.file = file
        self.limits = limits
        self.name = name or file.name
        self._slots = threading.BoundedSemaphore(max(1, limits.concurrency))
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def call(self, entry: str, payload: Any, settings: Any) -> Result:
        """Run ``entry(payload, settings)`` in a worker.

        Args:
            entry: ``on_track`` … ``on_batch``, ``on_request``, or ``events`` (a list, each to
                its per-type handler).
        """
        with self._slots:
            if self._closed:
                return Result("error", "Closed", f"the pool of {self.name} is closed")
            request = {"entry": entry, "payload": payload, "settings": settings}
            worker = self._send(request)
            if isinstance(worker, Result):
                return worker
            deadline = time.monotonic() + self.limits.timeout
            try:
                reply = worker.receive(deadline)
            except protocol.TimedOut:
                worker.kill()
                log.warning("function %s: timed out; worker killed", self.name)
                return Result(
                    "timeout", "Timeout", f"no answer within {self.limits.timeout:g}s (killed)"
                )
            except protocol.TooLarge as exc:
                worker.kill()
                return Result("error", "TooLarge", str(exc))
            except (protocol.Closed, ValueError):
                how = worker.reap()
                log.warning("function %s: worker died (%s)", self.name, how)
                return Result("crash", "Crash", f"the function's worker process died ({how})")
            if isinstance(reply, dict) and reply.get("restart"):
                worker.stop()
            else:
                self._checkin(worker)
            if not isinstance(reply, dict):
                return Result("error", "ProtocolError", "the worker sent a malformed reply")
            return outcome.from_reply(reply)

    def _send(self, request: dict[str, Any]) -> _Worker | Result:
        """Hand ``request`` to a worker. One found dead while idle (killed from outside, the
        OOM killer) has not run the call, so a fresh one is tried once before it counts."""
        for _ in range(2):
            worker, problem = self._checkout()
            if worker is None:
                return Result("load", "LoadError", f"{self.name}: {problem}")
            try:
                worker.send(request)
            except protocol.TooLarge as exc:
                self._checkin(worker)
                return Result("error", "TooLarge", str(exc))
            except protocol.Closed:
                log.warning("function %s: an idle worker had died (%s)", self.name, worker.reap())
                continue
            return worker
        return Result("crash", "Crash", "the function's worker processes keep dying")

    def _checkout(self) -> tuple[_Worker | None, str]:
        changed = _mtime(self.file)
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is not None and worker.started_at >= changed:
            return worker, ""
        if worker is not None:
            log.info("function %s changed; starting a new worker", self.name)
            worker.stop()
        if not self.file.exists():
            return None, f"{self.file} does not exist"
        worker = _Worker(self.file, self.limits.memory)
        problem = worker.ready(_STARTUP + self.limits.timeout)
        if problem is not None:
            worker.kill()
            log.error("function %s could not start: %s", self.name, problem)
            return None, problem
        return worker, ""

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.stop()

    def close(self) -> None:
        """Stop the idle workers; busy ones stop when their call returns. Idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


def _mtime(file: Path) -> float:
    try:
        return os.stat(file).st_mtime
    except OSError:
        return 0.0
