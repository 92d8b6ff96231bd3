"""The running server: gateway + admin API + the processor, wired to storage.

``App`` is one ASGI callable. ``/v1/...`` goes to the gateway (the hot path, plain ASGI); the
rest to the admin API. Storage opens in :meth:`App.startup` (run by the ASGI lifespan) and closes
in :meth:`App.shutdown`, after the HTTP server has finished its in-flight requests, so
everything that was answered 200 is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mainstem import config, timestamps
from mainstem.api import build_api
from mainstem.config import Workspace
from mainstem.destinations import courier as delivery
from mainstem.destinations import service as delivery_service
from mainstem.destinations.metrics import DeliveryCollector
from mainstem.destinations.state import DeliveryState
from mainstem.errors import ConfigError
from mainstem.functions.source import PREFIX as FUNCTIONS_PREFIX
from mainstem.functions.source import SourceFunctions
from mainstem.gateway import Gateway, Receive, Scope, Send
from mainstem.identity import resolver as identity
from mainstem.identity.editor import ProfileEditor
from mainstem.identity.http import build_profiles_api
from mainstem.identity.sqlite import FILE_NAME as PROFILES_FILE
from mainstem.identity.sqlite import SqliteProfileStore
from mainstem.identity.store import ProfileStore
from mainstem.intake import Limits, allow_deep_json
from mainstem.metrics import Metrics
from mainstem.plans.governance import source_plans
from mainstem.processor import Processor
from mainstem.storage import EventLog, PipelineStore
from mainstem.storage.groupcommit import GroupCommitter
from mainstem.storage.postgres.delivery import PostgresDeliveryState
from mainstem.storage.postgres.eventlog import PostgresEventLog
from mainstem.storage.postgres.pipeline import PostgresPipelineStore
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from mainstem.warehouse import service as warehouse
from mainstem.worker import ProcessorProcess

log = logging.getLogger(__name__)

ProcessorMode = Literal["process", "thread", "none"]


@dataclass(frozen=True)
class DataDir:
    """Where the embedded backend keeps its files."""

    root: Path

    @property
    def log(self) -> Path:
        return self.root / "log-0.db"

    @property
    def pipeline(self) -> Path:
        return self.root / "pipeline.db"

    @property
    def processor_lock(self) -> Path:
        return self.root / "processor.lock"


def limits_of(workspace: Workspace) -> Limits:
    return Limits(
        max_event_bytes=workspace.settings.max_event_bytes,
        max_batch_events=workspace.settings.max_batch_events,
    )


class App:
    def __init__(
        self,
        workspace: Workspace,
        *,
        processor: ProcessorMode = "process",
        reload_interval: float = 2.0,
    ) -> None:
        allow_deep_json()
        self.workspace = workspace
        self.data = DataDir(Path(workspace.settings.data_dir))
        self.metrics = Metrics()
        self.mode = processor
        self.reload_interval = reload_interval
        self.eventlog: EventLog | None = None
        self.store: PipelineStore | None = None
        self.profiles: ProfileStore | None = None
        self._writable_profiles: Callable[[], ProfileStore] | None = None
        """Opens the profiles store for writing (the Profile API's edits)."""
        self._writable_pipeline: Callable[[], PipelineStore] | None = None
        """Opens the event store for writing (regulations: the processor owns the rest)."""
        self.committer: GroupCommitter | None = None
        self.gateway: Gateway | None = None
        self._processor_thread: threading.Thread | None = None
        self._processor_stop = threading.Event()
        self._processor_process: ProcessorProcess | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False
        self.metrics.add_pipeline(self._counters, self.lag)
        self._delivery_state: DeliveryState | None = None
        self.metrics.registry.register(DeliveryCollector(self._destination_overview))
        self.api = build_api(
            self._store,
            lambda: self.workspace.admin_token,
            self.health,
            self.metrics.render,
            delivery=lambda: (self.workspace.destinations, self._deliveries()),
            sources=lambda: self.workspace.sources,
            profiles=self._profile_editor,
            warehouse=lambda: warehouse.configured(self.workspace.settings),
            regulator=self._regulator,
        )
        self.functions = SourceFunctions(lambda: self.workspace, lambda: self.gateway)
        self.profiles_api = build_profiles_api(
            lambda: self.profiles,
            self._store,
            lambda: self.workspace.admin_token,
            self._profile_editor,
        )

    def _destination_overview(self) -> list[dict[str, Any]]:
        if not self.workspace.destinations:
            return []
        return delivery_service.overview(
            self.workspace.destinations, self._deliveries(), self._store()
        )

    def _deliveries(self) -> DeliveryState | None:
        """``delivery.db``, read-only, once the processor has created it; on PostgreSQL the
        shared delivery tables."""
        if self._delivery_state is None:
            url = self.workspace.settings.database_url.reveal()
            self._delivery_state = (
                PostgresDeliveryState(url) if url else delivery_service.open_state(self.data.root)
            )
        return self._delivery_state

    def _profile_editor(self) -> ProfileEditor | None:
        if self._writable_profiles is None:
            return None
        return ProfileEditor(self._writable_profiles, self._store, lambda: self.workspace.identity)

    def _regulator(self) -> PipelineStore:
        if self._writable_pipeline is None:
            raise RuntimeError("storage is not open")
        return self._writable_pipeline()

    def _store(self) -> PipelineStore:
        if self.store is None:
            raise RuntimeError("storage is not open")
        return self.store

    def _counters(self) -> dict[tuple[str, str], int]:
        return self.store.counters() if self.store is not None else {}

    async def startup(self) -> None:
        settings = self.workspace.settings
        if settings.database_url.reveal():
            await asyncio.to_thread(self._open_postgres, settings.database_url.reveal())
        else:
            self.data.root.mkdir(parents=True, exist_ok=True)
            self.eventlog = SqliteEventLog(
                self.data.log, fsync=settings.fsync, checkpoint_interval=1.0
            )
            # Opening it writable once creates and migrates it; the gateway process only reads it.
            SqlitePipelineStore(self.data.pipeline).close()
            self.store = SqlitePipelineStore(self.data.pipeline, readonly=True)
            # Unlike the rest of pipeline.db a regulation is not derived from the log: fsync it.
            pipeline = self.data.pipeline
            self._writable_pipeline = lambda: SqlitePipelineStore(pipeline, fsync=True)
            if settings.identity:
                path, fsync = self.data.root / PROFILES_FILE, settings.fsync
                self._writable_profiles = lambda: SqliteProfileStore(path, fsync=fsync)
                self._writable_profiles().close()  # creates and migrates it
                self.profiles = SqliteProfileStore(path, readonly=True)
        if self.eventlog is not None:
            self.committer = GroupCommitter(
                self.eventlog, housekeeping=self._trim_log, on_commit=self.metrics.on_commit
            )
            self.committer.start()
            self.gateway = Gateway(self.workspace, self.committer, self.metrics)
        # With PostgreSQL a gateway only appends; workers (elsewhere) process the log.
        mode = (
            "none" if settings.database_url.reveal() and settings.role == "gateway" else self.mode
        )
        if mode == "thread":
            self._processor_thread = threading.Thread(
                target=self._run_processor_thread, name="processor", daemon=True
            )
            self._processor_thread.start()
        elif mode == "process":
            self._processor_process = ProcessorProcess(self.data.root, self.workspace)
            self._processor_process.start()
            self._tasks.append(asyncio.create_task(self._supervise()))
        if self.workspace.path and self.reload_interval > 0:
            self._tasks.append(asyncio.create_task(self._watch_config(self.workspace.path)))
        self._ready = True

    def _open_postgres(self, url: str) -> None:
        """PostgreSQL: a gateway appends to a log partition it leases (``holder`` names it so a
        restart takes the same partition back); a worker only runs the processor."""
        settings = self.workspace.settings
        PostgresPipelineStore(url, fsync=settings.fsync).close()  # migrates
        self.store = PostgresPipelineStore(url, readonly=True)
        self._writable_pipeline = lambda: PostgresPipelineStore(url)
        if settings.identity:
            from mainstem.identity.postgres import PostgresProfileStore

            self._writable_profiles = lambda: PostgresProfileStore(url)
            self._writable_profiles().close()  # migrates
            self.profiles = PostgresProfileStore(url, readonly=True)
        if settings.role != "worker":
            self.eventlog = PostgresEventLog(
                url,
                holder=f"{socket.gethostname()}:{settings.port}",
                lease_ttl=settings.lease_ttl,
                fsync=settings.fsync,
            )

    async def shutdown(self) -> None:
        self._ready = False
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await asyncio.to_thread(self.functions.close)
        if self.committer is not None:
            await asyncio.to_thread(self.committer.stop)
        self._processor_stop.set()
        if self._processor_thread is not None:
            self._processor_thread.join()
        if self._processor_process is not None:
            await asyncio.to_thread(self._processor_process.stop)
        if self.store is not None:
            self.store.close()
        if self._delivery_state is not None:
            self._delivery_state.close()
        if self.profiles is not None:
            self.profiles.close()
        if self.eventlog is not None:
            self.eventlog.close()

    def processor(self) -> Processor:
        """A processor over this app's storage (for ``processor="none"`` and the tests)."""
        assert self.eventlog is not None, "call startup() first"
        url = self.workspace.settings.database_url.reveal()
        return Processor(
            self.eventlog,
            PostgresPipelineStore(url) if url else SqlitePipelineStore(self.data.pipeline),
            limits=limits_of(self.workspace),
            dedupe_window=self.workspace.settings.dedupe_window,
            plans=source_plans(self.workspace.sources),
        )

    def _run_processor_thread(self) -> None:
        processor = self.processor()
        loader = warehouse.start(self.workspace.settings, processor.store, self._processor_stop)
        resolver = self._start_resolver(processor.store)
        deliveries = delivery.start(
            () if self.workspace.settings.database_url.reveal() else self.workspace.destinations,
            processor.store,
            self.data.root,
            self._processor_stop,
        )
        try:
            processor.run(self._processor_stop)
        finally:
            if loader is not None:
                loader.join()
            deliveries()
            if resolver is not None:
                resolver.join()
            processor.store.close()

    def _start_resolver(self, store: PipelineStore) -> threading.Thread | None:
        settings = self.workspace.settings
        url = settings.database_url.reveal()
        if not url:
            return identity.start(
                self.data.root,
                store,
                self._processor_stop,
                enabled=settings.identity,
                fsync=settings.fsync,
                batch_events=settings.identity_batch_events,
                spec=self.workspace.identity,
            )
        if not settings.identity:
            return None
        from mainstem.identity.postgres import PostgresProfileStore

        return identity.start_with(
            PostgresProfileStore(url),
            store,
            self._processor_stop,
            batch_events=settings.identity_batch_events,
            spec=self.workspace.identity,
        )

    async def _supervise(self) -> None:
        """Restart the processor process if it dies; it resumes from its committed offset."""
        assert self._processor_process is not None
        while True:
            await asyncio.sleep(1.0)
            if not self._processor_process.alive():
                log.error(
                    "processor process exited (code %s); restarting",
                    self._processor_process.exitcode(),
                )
                self._processor_process = ProcessorProcess(self.data.root, self.workspace)
                self._processor_process.start()

    async def _watch_config(self, path: str) -> None:
        """Reload the workspace when ``mainstem.yaml`` changes (sources and keys at once; the
        processor is restarted when its part changed); keep the old one on errors."""
        file = Path(path)
        last = file.stat().st_mtime_ns if file.exists() else 0
        while True:
            await asyncio.sleep(self.reload_interval)
            mtime = file.stat().st_mtime_ns if file.exists() else 0
            if mtime == last:
                continue
            last = mtime
            try:
                fresh = config.load(file, flags=self.workspace.flags)
            except ConfigError as exc:
                log.error("not reloading the workspace: %s", exc)
                continue
            if fresh.settings != self.workspace.settings:
                log.warning(
                    "settings changed in %s; restart to apply them (sources and keys "
                    "are reloaded now)",
                    path,
                )
                fresh = dataclasses.replace(fresh, settings=self.workspace.settings)
            self.workspace = fresh
            if self.gateway is not None:
                self.gateway.workspace = fresh
            log.info("workspace reloaded from %s: %d sources", path, len(fresh.sources))
            running = self._processor_process
            if running is not None and not running.serves(fresh):
                # destinations, tracking plans or identity rules changed: the new processor
                # waits for the old one's lock, then resumes from the committed offset and
                # every destination from its cursor — nothing is skipped or sent twice
                log.info("destinations, plans or identity rules changed: restarting the processor")
                self._processor_process = ProcessorProcess(self.data.root, fresh)
                self._processor_process.start()
                await asyncio.to_thread(running.stop)

    def _trim_log(self) -> None:
        """Runs on the log writer thread: drop processed requests older than the retention."""
        if self.eventlog is None or self.store is None:
            return
        cutoff = timestamps.now_us() - int(self.workspace.settings.log_retention * 1_000_000)
        removed = self.eventlog.trim(cutoff, self.store.offset(self.eventlog.partition))
        if removed:
            log.info("log retention removed %d processed requests", removed)

    def lag(self) -> int:
        if isinstance(self.store, PostgresPipelineStore):
            return self.store.lag()  # every log partition, whoever appends to it
        if self.eventlog is None or self.store is None:
            return 0
        return max(0, self.eventlog.last_seq() - self.store.offset(self.eventlog.partition))

    def health(self) -> dict[str, Any]:
        # A worker (PostgreSQL, role worker) has no log writer.
        ok = self._ready and (self.committer is None or self.committer.running)
        report: dict[str, Any] = {"status": "ok" if ok else "unavailable"}
        if ok:
            report["log_lag"] = self.lag()
            if self._processor_process is not None:
                report["processor"] = "running" if self._processor_process.alive() else "down"
        return report

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"].startswith("/v1/spaces/"):
            await self.profiles_api(scope, receive, send)  # the Profile API, not ingest
        elif kind == "http" and scope["path"].startswith("/v1/"):
            if self.gateway is None:
                await _unavailable(send)
                return
            await self.gateway(scope, receive, send)
        elif kind == "http" and scope["path"].startswith(FUNCTIONS_PREFIX):
            await self.functions(scope, receive, send)  # source functions (docs/functions.md)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.api(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _unavailable(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")],
        }
    )
    await send(
        {
            "type": "http.response.body",
            "body": b'{"success":false,"code":"unavailable","message":"starting up",'
            b'"error":"starting up"}',
        }
    )
