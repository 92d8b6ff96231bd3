"""What only the PostgreSQL backend has: log partitions with one appender each, worker leases
and the commit fence, time-partitioned retention, migrations under a lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from mainstem.errors import ConfigError, LeaseLost
from mainstem.logrecord import LogRecord
from mainstem.storage import Batch, EventQuery, StoredEvent
from mainstem.storage.postgres.connection import connect, migrate
from mainstem.storage.postgres.delivery import PostgresDeliveryState
from mainstem.storage.postgres.eventlog import PostgresEventLog, day_partitions
from mainstem.storage.postgres.leases import WorkerLeases
from mainstem.storage.postgres.pipeline import MIGRATIONS as PIPELINE_MIGRATIONS
from mainstem.storage.postgres.pipeline import PostgresPipelineStore
from mainstem.timestamps import now_us
from tests.conftest import WORKSPACE

DAY = 86_400_000_000


def record(n: int, received_at: int = 1_000) -> LogRecord:
    return LogRecord(source_id="web", received_at=received_at, body=b'{"n":%d}' % n)


def event(message_id: str) -> StoredEvent:
    return StoredEvent(message_id, "track", "E", "u", None, DAY, b"{}")


def test_each_appender_claims_its_own_partition(postgres_url: str) -> None:
    first, second = PostgresEventLog(postgres_url), PostgresEventLog(postgres_url)
    try:
        assert {first.partition, second.partition} == {"0", "1"}
        assert first.append([record(1), record(2)]) == 2
        assert second.append([record(3)]) == 1  # seqs are per partition
        assert [r.body for r in first.read(0, 10)] == [b'{"n":1}', b'{"n":2}']
        assert [r.body for r in second.read(0, 10)] == [b'{"n":3}']
    finally:
        first.close()
        second.close()
    # a closed appender gives its partition back; the next one reuses it
    third = PostgresEventLog(postgres_url)
    try:
        assert third.partition == "0"
        assert third.append([record(4)]) == 3  # seqs continue, never reused
    finally:
        third.close()


def test_a_restarted_gateway_takes_back_its_own_partition(postgres_url: str) -> None:
    dead = PostgresEventLog(postgres_url, holder="gw-a:8088", lease_ttl=60)
    other = PostgresEventLog(postgres_url, holder="gw-b:8088", lease_ttl=60)
    restarted = PostgresEventLog(postgres_url, holder="gw-a:8088", lease_ttl=60)
    try:
        assert restarted.partition == dead.partition != other.partition
        # the old process (paused, not dead) is fenced off: it moves to a fresh partition
        assert restarted.append([record(1)]) == 1
        dead.append([record(2)])
        assert dead.partition not in {restarted.partition, other.partition}
        assert [r.body for r in restarted.read(0, 10)] == [b'{"n":1}']
    finally:
        for log in (dead, other, restarted):
            log.close()


def test_readers_never_see_a_gap_with_concurrent_appenders(postgres_url: str) -> None:
    """Several appenders, one reader per partition following ``seq > offset``: every record
    is read exactly once, in seq order, although the appenders commit concurrently."""
    appenders = [PostgresEventLog(postgres_url) for _ in range(3)]
    stop = threading.Event()
    appended: dict[str, int] = {}

    def append(log: PostgresEventLog) -> None:
        n = 0
        while not stop.is_set():
            log.append([record(n + i) for i in range(20)])
            n += 20
        appended[log.partition] = n

    threads = [threading.Thread(target=append, args=(log,)) for log in appenders]
    for thread in threads:
        thread.start()
    readers = {
        log.partition: PostgresEventLog(postgres_url, partition=log.partition) for log in appenders
    }
    offsets = dict.fromkeys(readers, 0)
    seen: dict[str, list[int]] = {p: [] for p in readers}
    deadline = time.monotonic() + 2
    try:
        while time.monotonic() < deadline or any(t.is_alive() for t in threads):
            if time.monotonic() >= deadline:
                stop.set()
            for partition, reader in readers.items():
                for r in reader.read(offsets[partition], 50):
                    seen[partition].append(r.seq)
                    offsets[partition] = r.seq
        for partition, reader in readers.items():
            seen[partition].extend(r.seq for r in reader.read(offsets[partition], 1_000_000))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for log in [*appenders, *readers.values()]:
            log.close()
    for partition, seqs in seen.items():
        assert seqs == list(range(1, appended[partition] + 1)), partition


def test_worker_leases_divide_partitions_and_move_when_a_worker_dies(
    postgres_url: str,
) -> None:
    gateways = [PostgresEventLog(postgres_url) for _ in range(4)]
    store = PostgresPipelineStore(postgres_url)
    a = WorkerLeases(postgres_url, owner="a", ttl=1.0)
    b = WorkerLeases(postgres_url, owner="b", ttl=1.0)
    try:
        assert a.heartbeat().held == ["0", "1", "2", "3"]
        b.heartbeat()  # b joins: a gives back its excess on its next heartbeat
        assert a.heartbeat().held == ["0", "1"]
        share = b.heartbeat()
        assert (share.held, share.workers, share.partitions) == (["2", "3"], 2, 4)
        time.sleep(1.3)  # b dies: no more heartbeats
        assert a.heartbeat().held == ["0", "1", "2", "3"]
    finally:
        for leases in (a, b):
            leases.close()
        store.close()
        for log in gateways:
            log.close()


def test_a_worker_that_lost_its_lease_cannot_commit(postgres_url: str) -> None:
    gateway = PostgresEventLog(postgres_url)
    a = WorkerLeases(postgres_url, owner="a", ttl=0.5)
    b = WorkerLeases(postgres_url, owner="b", ttl=0.5)
    store_a = PostgresPipelineStore(postgres_url, owner="a")
    store_b = PostgresPipelineStore(postgres_url, owner="b")
    try:
        assert a.heartbeat().held == ["0"]
        assert store_a.commit(Batch("0", 1, events=[("web", event("m1"))])).stored == 1
        time.sleep(0.7)  # a is paused past its lease; b takes the partition over
        assert b.heartbeat().held == ["0"]
        assert store_b.commit(Batch("0", 2, events=[("web", event("m2"))])).stored == 1
        with pytest.raises(LeaseLost, match="log partition 0 is leased to another worker"):
            store_a.commit(Batch("0", 2, events=[("web", event("m2-again"))]))
        assert store_a.offset("0") == 2
        assert len(store_a.events(EventQuery())) == 2
    finally:
        for closable in (store_a, store_b, a, b, gateway):
            closable.close()


def test_a_worker_paused_inside_a_transaction_does_not_pin_its_partition(
    postgres_url: str,
) -> None:
    # a worker stopped mid-commit holds its lease row FOR UPDATE; SKIP LOCKED claims would pass
    # the partition over for as long as the pause lasts, unless the server ends the idle session
    gateway = PostgresEventLog(postgres_url)
    store = PostgresPipelineStore(postgres_url)
    a = WorkerLeases(postgres_url, owner="a", ttl=0.5)
    b = WorkerLeases(postgres_url, owner="b", ttl=0.5)
    paused = connect(postgres_url, idle_timeout=0.5)
    try:
        assert a.heartbeat().held == ["0"]
        paused.execute("BEGIN")
        paused.execute("SELECT 1 FROM leases WHERE partition = '0' FOR UPDATE")
        time.sleep(1.0)  # past the lease and past the idle-in-transaction timeout
        assert b.heartbeat().held == ["0"]
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            paused.execute("SELECT 1")  # the paused session was ended; it reconnects on waking
    finally:
        for closable in (paused, a, b, store, gateway):
            closable.close()


def test_retention_drops_whole_days_that_every_partition_processed(postgres_url: str) -> None:
    log = PostgresEventLog(postgres_url)
    store = PostgresPipelineStore(postgres_url)
    yesterday = now_us() - DAY
    name = day_partitions(yesterday, days_before=0)[0][0]
    try:
        log.append([record(1, received_at=yesterday), record(2, received_at=yesterday)])
        log.append([record(3, received_at=now_us())])
        # nothing processed yet: the day stays
        assert log.trim(received_before=now_us() + 3 * DAY, processed_up_to=0) == 0
        store.commit(Batch(log.partition, 2))
        tomorrow = (now_us() // DAY + 1) * DAY
        with connect(postgres_url) as conn:
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            }
        assert name in tables
        assert log.trim(received_before=tomorrow - DAY, processed_up_to=2) == 2
        with connect(postgres_url) as conn:
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            }
        assert name not in tables
        assert [r.seq for r in log.read(0, 10)] == [3]
    finally:
        log.close()
        store.close()


def test_dedupe_expiry_runs_in_chunks_and_the_hot_tables_leave_room(postgres_url: str) -> None:
    store = PostgresPipelineStore(postgres_url)
    try:
        old = [
            ("web", StoredEvent(f"old-{n}", "track", "E", "u", None, 1_000, b"{}"))
            for n in range(7)
        ]
        store.commit(Batch("0", 1, events=[*old, ("web", event("new"))]))
        assert store.expire(now=DAY + 1_000, dedupe_window=DAY - 500, chunk=3) == 7
        assert store.expire(now=DAY + 1_000, dedupe_window=DAY - 500, chunk=3) == 0
        with connect(postgres_url) as conn:
            options = dict(
                conn.execute(
                    "SELECT relname, reloptions FROM pg_class WHERE relnamespace = "
                    "current_schema()::regnamespace AND relname IN ('dedupe', 'offsets')"
                ).fetchall()
            )
            remembered = conn.execute("SELECT message_id FROM dedupe").fetchall()
        assert remembered == [("new",)]
        assert "autovacuum_vacuum_scale_factor=0.02" in options["dedupe"]
        assert "fillfactor=50" in options["offsets"]
    finally:
        store.close()


def test_processes_starting_together_migrate_once(postgres_url: str) -> None:
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            PostgresPipelineStore(postgres_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with connect(postgres_url) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM schema_migrations")]
    assert names == [name for name, _ in PIPELINE_MIGRATIONS]


def test_a_database_from_a_newer_version_is_refused(postgres_url: str) -> None:
    PostgresPipelineStore(postgres_url).close()
    with connect(postgres_url) as conn:
        conn.execute("INSERT INTO schema_migrations (name) VALUES ('pipeline/9999_future')")
        with pytest.raises(ConfigError) as info:
            migrate(conn, PIPELINE_MIGRATIONS)
    assert str(info.value) == (
        "the database has migrations this version does not know (pipeline/9999_future) — "
        "it was written by a newer Mainstem"
    )


def test_a_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="database_url: "):
        connect("postgresql://nobody@127.0.0.1:5432/test?bogus_option=1")


def test_connections_come_back_after_the_server_drops_them(postgres_url: str) -> None:
    log = PostgresEventLog(postgres_url)
    try:
        log.append([record(1)])
        with connect(postgres_url) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = current_setting('application_name') "
                "AND pid <> pg_backend_pid()"
            )
        with pytest.raises(psycopg.OperationalError):
            log.append([record(2)])
        assert log.append([record(3)]) == 2
    finally:
        log.close()


def test_status_shows_partitions_leases_lag_and_log_tables(postgres_url: str) -> None:
    from typer.testing import CliRunner

    from mainstem.cli import app
    from mainstem.storage.postgres.status import status

    gateway = PostgresEventLog(postgres_url, holder="gw:8088")
    store = PostgresPipelineStore(postgres_url, owner="worker-a")
    leases = WorkerLeases(postgres_url, owner="worker-a")
    try:
        gateway.append([record(1), record(2), record(3)])
        leases.heartbeat(["destination:hook"])
        store.commit(Batch("0", 1, events=[("web", event("m1")), ("web", event("m2"))]))
        delivery = PostgresDeliveryState(postgres_url, owner="worker-a")
        delivery.begin("hook", 0)
        delivery.advance("hook", 1, delivered=1)
        delivery.close()
        report = status(postgres_url)
        assert [
            (d.destination, d.cursor, d.queued, d.dead_letters, d.worker)
            for d in report.destinations
        ] == [("hook", 1, 1, 0, "worker-a")]
        [partition] = report.partitions
        assert (partition.partition, partition.last_seq, partition.offset, partition.lag) == (
            "0",
            3,
            1,
            2,
        )
        assert (partition.gateway, partition.worker) == ("gw:8088", "worker-a")
        assert [owner for owner, _ in report.workers] == ["worker-a"]
        assert "log_default" in {name for name, _ in report.log_tables}
        result = CliRunner().invoke(app, ["status", "--database", postgres_url])
        assert result.exit_code == 0, result.output
        assert "gw:8088" in result.output and "lag 2 requests" in result.output
        assert "Destinations" in result.output and "worker-a" in result.output
    finally:
        for closable in (leases, store, gateway):
            closable.close()


def test_status_without_postgresql_says_what_to_do(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mainstem.cli import app

    config = tmp_path / "mainstem.yaml"
    config.write_text(WORKSPACE.format(data_dir=tmp_path / "data"), encoding="utf-8")
    result = CliRunner().invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 1
    assert " ".join(result.output.split()) == (
        "Error: status reads a PostgreSQL deployment — set database_url or pass --database-url "
        "(with SQLite, /health shows the lag)"
    )
