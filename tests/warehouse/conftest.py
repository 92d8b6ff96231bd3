"""Warehouse fixtures: the real pipeline (event log → processor → event store) and a real
warehouse on each engine — a DuckDB file in a tmp dir, and a database of its own on the
PostgreSQL server at 127.0.0.1:5432 (created per test and dropped after; unreachable = fail)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from mainstem.intake import Limits
from mainstem.logrecord import LogRecord
from mainstem.processor import Processor
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from mainstem.warehouse.dialects import Dialect
from mainstem.warehouse.dialects.duckdb import DuckDB
from mainstem.warehouse.dialects.postgres import Postgres

PG_ADMIN = os.environ.get("MAINSTEM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
RECEIVED = 1_714_557_600_000_000  # 2024-05-01T10:00:00.000Z


class Pipeline:
    """Sends Segment batches through the real event log and processor into the event store."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.log = SqliteEventLog(root / "log-0.db", fsync=False)
        self.store = SqlitePipelineStore(root / "pipeline.db", fsync=False)
        self.processor = Processor(self.log, self.store, limits=Limits(), dedupe_window=86400)

    def send(
        self,
        messages: list[dict[str, Any]],
        *,
        source: str = "web",
        received_at: int = RECEIVED,
        sent_at: str | None = "2024-05-01T10:00:00.000Z",
    ) -> None:
        envelope: dict[str, Any] = {"batch": messages}
        if sent_at is not None:
            envelope["sentAt"] = sent_at
        self.log.append([LogRecord(source, received_at, msgspec.json.encode(envelope))])
        self.processor.drain()

    def close(self) -> None:
        self.store.close()
        self.log.close()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(tmp_path / "data")
    yield pipe
    pipe.close()


def make_postgres_database() -> tuple[str, str]:
    """A fresh database on the test server: (its URL, its name)."""
    name = f"mainstem_wh_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, name


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture(params=["duckdb", "postgres"])
def dialect(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dialect]:
    if request.param == "duckdb":
        yield DuckDB(tmp_path / "data" / "warehouse.duckdb")
        return
    url, name = make_postgres_database()
    try:
        yield Postgres(url)
    finally:
        drop_postgres_database(name)


def query(dialect: Dialect, sql: str) -> list[tuple[Any, ...]]:
    session = dialect.connect(read_only=True)
    try:
        return session.query(sql)[1]
    finally:
        session.close()
