"""Identity fixtures: the real pipeline (event log → processor → event store) and a real profiles
store — profiles.db in a tmp dir, or a fresh schema of the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mainstem.identity.postgres import PostgresProfileStore
from mainstem.identity.sqlite import SqliteProfileStore
from mainstem.identity.store import ProfileStore
from mainstem.intake import Limits
from mainstem.logrecord import LogRecord
from mainstem.processor import Processor
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from tests.storage.postgres import fresh_schema

RECEIVED = 1_714_557_600_000_000  # 2024-05-01T10:00:00.000Z


class Pipeline:
    """Sends Segment batches through the real event log and processor into the event store."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.log = SqliteEventLog(root / "log-0.db", fsync=False)
        self.store = SqlitePipelineStore(root / "pipeline.db", fsync=False)
        self.processor = Processor(self.log, self.store, limits=Limits(), dedupe_window=86400)

    def send(self, messages: list[dict[str, Any]], *, source: str = "web") -> None:
        envelope = {"batch": messages, "sentAt": "2024-05-01T10:00:00.000Z"}
        self.log.append([LogRecord(source, RECEIVED, msgspec.json.encode(envelope))])
        self.processor.drain()

    def close(self) -> None:
        self.store.close()
        self.log.close()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(tmp_path / "data")
    yield pipe
    pipe.close()


STORES = ["sqlite", "postgres"]
"""Every profiles store backend: tests of store behaviour run on each."""


class Stores:
    """Opens profiles stores of one backend on one database (``profiles.db`` in ``root``, or
    the PostgreSQL schema of ``url``). Each store stands for a process of its own: the
    resolver, the CLI, the Profile API. All are closed by :meth:`close`."""

    def __init__(self, kind: str, root: Path, url: str = "") -> None:
        self.kind = kind
        self.root = root
        self.url = url
        self._opened: list[ProfileStore] = []

    @property
    def where(self) -> str:
        """How the store's messages name it."""
        return "profiles.db" if self.kind == "sqlite" else "profiles in PostgreSQL"

    @property
    def scope(self) -> str:
        """What one resolver runs on, in the store's messages."""
        return "this data directory" if self.kind == "sqlite" else "this database"

    def __call__(self, *, readonly: bool = False) -> ProfileStore:
        store: ProfileStore
        if self.kind == "sqlite":
            store = SqliteProfileStore(self.root / "profiles.db", fsync=False, readonly=readonly)
        else:
            store = PostgresProfileStore(self.url, readonly=readonly)
        self._opened.append(store)
        return store

    def query(self, store: ProfileStore, sql: str) -> list[tuple[Any, ...]]:
        """Run ``sql`` on ``store``'s reading connection; ``{merges}`` names the merges table."""
        table = "merges" if self.kind == "sqlite" else "profile_merges"
        conn = store._conn()  # type: ignore[attr-defined]
        return list(conn.execute(sql.format(merges=table)).fetchall())

    def close(self) -> None:
        for store in self._opened:
            store.close()


@contextmanager
def open_stores(kind: str, root: Path) -> Iterator[Stores]:
    """:class:`Stores` of backend ``kind`` on a new database, dropped (PostgreSQL) after use."""
    if kind == "sqlite":
        stores = Stores(kind, root)
        try:
            yield stores
        finally:
            stores.close()
        return
    with fresh_schema("identity") as url:
        stores = Stores(kind, root, url)
        try:
            yield stores
        finally:
            stores.close()


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest, pipeline: Pipeline) -> Iterator[Stores]:
    """Opens profiles stores on one database of each backend in turn."""
    with open_stores(request.param, pipeline.root) as stores:
        yield stores


@pytest.fixture
def profiles(make_store: Stores) -> ProfileStore:
    return make_store()
