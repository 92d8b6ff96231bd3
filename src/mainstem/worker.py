"""The processor as its own OS process, next to the gateway (``mainstem serve``).

A separate process keeps the processor's per-event Python work off the gateway's interpreter
(two cores, two GILs). An exclusive lock on ``processor.lock`` guarantees one processor per data
directory; the child asks the kernel for SIGTERM when its parent dies (and polls as a fallback),
so a SIGKILLed server leaves no orphan processing the log twice.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from mainstem.config import Workspace
from mainstem.logs import setup_logging
from mainstem.plans.governance import source_plans

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.0005
"""Seconds a thread may keep the GIL while another waits for it (Python's default: 0.005). The
processor's threads — the processor, the identity resolver and its writer, the warehouse loader,
the couriers — mostly hand their work to SQLite or DuckDB, which run without the GIL, and need it
back the moment the engine returns. At the default the resolver's writer waited up to 5 ms after
each statement for the resolving thread to let go; at 0.5 ms the identity stage ran about 6%
faster (``bench/identity.py``)."""

_PR_SET_PDEATHSIG = 1


class ProcessorProcess:
    def __init__(self, data_dir: Path, workspace: Workspace) -> None:
        settings = workspace.settings
        self._args: dict[str, Any] = {
            "data_dir": str(data_dir),
            "fsync": settings.fsync,
            "database_url": settings.database_url.reveal(),
            "lease_ttl": settings.lease_ttl,
            "max_event_bytes": settings.max_event_bytes,
            "max_batch_events": settings.max_batch_events,
            "dedupe_window": settings.dedupe_window,
            "log_level": settings.log_level,
            "log_format": settings.log_format,
            "warehouse": settings.warehouse.reveal(),
            "warehouse_interval": settings.warehouse_interval,
            "warehouse_batch_events": settings.warehouse_batch_events,
            "plans": source_plans(workspace.sources),
            "identity": settings.identity,
            "identity_batch_events": settings.identity_batch_events,
            "identity_spec": workspace.identity,
            "parent": os.getpid(),
            "destinations": workspace.destinations,
        }
        self._process: BaseProcess | None = None

    def serves(self, workspace: Workspace) -> bool:
        """Whether this process was given what ``workspace`` would give it: destinations,
        tracking plans, identity rules (settings are not reloaded)."""
        fresh = ProcessorProcess(Path(self._args["data_dir"]), workspace)._args
        return {**fresh, "parent": None} == {**self._args, "parent": None}

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(
            target=run, args=(self._args,), name="mainstem-processor", daemon=True
        )
        self._process.start()

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def exitcode(self) -> int | None:
        return self._process.exitcode if self._process is not None else None

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the processor to finish its current run and exit; kill it if it hangs."""
        process = self._process
        if process is None or not process.is_alive():
            return
        process.terminate()  # SIGTERM: the loop finishes its transaction, then exits
        process.join(timeout)
        if process.is_alive():
            log.error("processor did not stop within %.0fs; killing it", timeout)
            process.kill()
            process.join()


def run(args: dict[str, Any]) -> None:
    """Entry point of the processor process."""
    from mainstem.destinations import courier
    from mainstem.identity import resolver as identity
    from mainstem.intake import Limits, allow_deep_json
    from mainstem.processor import Processor
    from mainstem.storage.sqlite.eventlog import SqliteEventLog
    from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
    from mainstem.warehouse import service as warehouse

    setup_logging(args["log_level"], args["log_format"])
    # Ingest first: under CPU pressure the gateway answers while the log absorbs the backlog.
    os.nice(5)
    sys.setswitchinterval(SWITCH_INTERVAL)
    allow_deep_json()
    stop = threading.Event()
    _die_with_parent(args["parent"], stop)
    _stop_on_sigterm(stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    if args.get("database_url"):
        _run_consumer(args, stop)
        return
    root = Path(args["data_dir"])
    with open(root / "processor.lock", "w") as lock:
        while not stop.is_set():
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # an earlier processor is still finishing
                stop.wait(0.1)
        if stop.is_set():
            return
        eventlog = SqliteEventLog(root / "log-0.db", fsync=args["fsync"])
        store = SqlitePipelineStore(root / "pipeline.db")
        processor = Processor(
            eventlog,
            store,
            limits=Limits(args["max_event_bytes"], args["max_batch_events"]),
            dedupe_window=args["dedupe_window"],
            plans=args.get("plans", ()),
        )
        log.info("processor started (pid %d)", os.getpid())
        loader = warehouse.start_loader(
            warehouse.dialect_for(args["warehouse"], root),
            store,
            stop,
            interval=args["warehouse_interval"],
            batch_events=args["warehouse_batch_events"],
        )
        resolver = identity.start(
            root,
            store,
            stop,
            enabled=args.get("identity", True),
            fsync=args["fsync"],
            batch_events=args.get("identity_batch_events", 10_000),
            spec=args.get("identity_spec"),
        )
        # each destination: its own thread and cursor over the event store (docs/destinations.md)
        deliveries = courier.start(args.get("destinations", ()), store, root, stop)
        try:
            processor.run(stop)
        finally:
            if loader is not None:
                loader.join()  # the same stop event: it finishes its batch, then exits
            deliveries()
            if resolver is not None:
                resolver.join()
            store.close()
            eventlog.close()
            log.info("processor stopped")


def _run_consumer(args: dict[str, Any], stop: threading.Event) -> None:
    """PostgreSQL: no file lock — workers share the log partitions through leases."""
    from mainstem.consumer import Consumer
    from mainstem.identity.spec import IdentitySpec
    from mainstem.intake import Limits
    from mainstem.warehouse.service import dialect_for

    dialect = dialect_for(args["warehouse"], Path(args["data_dir"]))

    consumer = Consumer(
        args["database_url"],
        limits=Limits(args["max_event_bytes"], args["max_batch_events"]),
        dedupe_window=args["dedupe_window"],
        lease_ttl=args["lease_ttl"],
        fsync=args["fsync"],
        plans=args.get("plans", ()),
        destinations=tuple(args.get("destinations", ())),
        warehouse=None
        if dialect is None
        else (dialect, args["warehouse_interval"], args["warehouse_batch_events"]),
        identity=(
            args.get("identity_spec") or IdentitySpec(),
            args.get("identity_batch_events", 10_000),
        )
        if args.get("identity", True)
        else None,
    )
    log.info("worker started (pid %d, lease owner %s)", os.getpid(), consumer.owner)
    consumer.run(stop)
    log.info("worker stopped")


def _stop_on_sigterm(stop: threading.Event) -> None:
    """SIGTERM sets ``stop`` — from a new thread. A Python signal handler runs in the main
    thread between two bytecodes, possibly inside ``stop.set()`` itself: a second SIGTERM (the
    parent's ``terminate()`` and then its death signal) arriving there made the handler wait
    for the event's lock that its own frame held, and the processor never exited, keeping
    ``processor.lock`` from its successor."""

    def handle(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough
        threading.Thread(target=stop.set, name="sigterm", daemon=True).start()

    signal.signal(signal.SIGTERM, handle)


def _die_with_parent(parent: int, stop: threading.Event) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass

    def watch() -> None:
        while not stop.wait(0.5):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
