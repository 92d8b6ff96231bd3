"""Faults under load, on real processes and the real PostgreSQL: gateways and workers are killed,
paused and the database is restarted while clients stream batches. Afterwards, once the workers
have caught up, every messageId answered 200 is stored exactly once and delivered at least once
to the test destination (a webhook on loopback), nothing unsent is stored or delivered, and every
user's events are stored in the order the user sent them.

A network partition of a worker is simulated by pausing its process tree with SIGSTOP: to the
database and the other workers that is indistinguishable (no heartbeats, no commits), and when
it comes back it still believes it holds its leases — the case the commit fence is for.
"""

from __future__ import annotations

import shutil
import signal
import subprocess

import psycopg
import pytest

from tests.destinations.conftest import Receiver
from tests.scale.conftest import Cluster
from tests.scale.harness import (
    Load,
    assert_delivered_at_least_once,
    assert_exactly_once_in_order,
    caught_up,
    wait_for,
)

pytestmark = pytest.mark.slow

CLIENTS = 4


def lease_owners(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT owner, count(*) FROM leases WHERE owner IS NOT NULL AND expires_at > now() "
            "GROUP BY owner"
        ).fetchall()
    return {str(owner): int(count) for owner, count in rows}


def test_sigkill_of_a_gateway_mid_request(cluster: Cluster, sink: Receiver) -> None:
    gateways = [cluster("gateway"), cluster("gateway")]
    workers = [cluster("worker"), cluster("worker")]
    with Load(gateways, CLIENTS) as load:
        load.progress(10, 30, "10 batches per client")
        gateways[0].kill()
        gateways[0].start()  # same host:port: it takes its log partition back
        load.progress(10, 30, "10 more batches per client after the restart")
    assert_exactly_once_in_order(caught_up(workers[0]), load.clients)
    assert_delivered_at_least_once(sink, load.clients)


def test_sigkill_of_a_worker_mid_batch(cluster: Cluster, sink: Receiver, postgres_url: str) -> None:
    gateways = [cluster("gateway"), cluster("gateway")]
    workers = [cluster("worker"), cluster("worker")]
    with Load(gateways, CLIENTS) as load:
        load.progress(10, 30, "10 batches per client")
        wait_for(lambda: len(lease_owners(postgres_url)) == 2, 15, "both workers to hold leases")
        workers[0].kill()
        load.progress(10, 30, "10 more batches per client")
        # the survivor takes the dead worker's partitions over within a few seconds
        wait_for(
            lambda: list(lease_owners(postgres_url).values()) == [2],
            15,
            "one worker to hold both partitions",
        )
    assert_exactly_once_in_order(caught_up(gateways[0]), load.clients)
    assert_delivered_at_least_once(sink, load.clients)


def test_a_paused_worker_cannot_commit_what_moved(
    cluster: Cluster, sink: Receiver, postgres_url: str
) -> None:
    gateways = [cluster("gateway"), cluster("gateway")]
    workers = [cluster("worker"), cluster("worker")]
    with Load(gateways, CLIENTS) as load:
        load.progress(10, 30, "10 batches per client")
        wait_for(lambda: len(lease_owners(postgres_url)) == 2, 15, "both workers to hold leases")
        workers[0].signal(signal.SIGSTOP)
        wait_for(
            lambda: list(lease_owners(postgres_url).values()) == [2],
            15,
            "the other worker to take the partitions over",
        )
        load.progress(10, 30, "10 more batches per client while a worker is cut off")
        workers[0].signal(signal.SIGCONT)
        load.progress(10, 30, "10 more batches per client after it came back")
        wait_for(lambda: len(lease_owners(postgres_url)) == 2, 15, "the shares to rebalance")
    assert_exactly_once_in_order(caught_up(gateways[1]), load.clients)
    assert_delivered_at_least_once(sink, load.clients)


def test_postgresql_restarted_under_load(cluster: Cluster, sink: Receiver) -> None:
    ctl = shutil.which("pg_ctlcluster")
    assert ctl is not None, "pg_ctlcluster is needed to restart PostgreSQL (Debian postgresql)"
    gateways = [cluster("gateway"), cluster("gateway")]
    workers = [cluster("worker"), cluster("worker")]
    with Load(gateways, CLIENTS) as load:
        load.progress(10, 30, "10 batches per client")
        subprocess.run(
            [ctl, "--skip-systemctl-redirect", "15", "main", "restart", "-m", "fast"],
            check=True,
            timeout=60,
        )
        load.progress(10, 60, "10 more batches per client after the restart")
    assert_exactly_once_in_order(caught_up(workers[1]), load.clients)
    assert_delivered_at_least_once(sink, load.clients)


def test_adding_a_worker_rebalances_without_a_restart(
    cluster: Cluster, sink: Receiver, postgres_url: str
) -> None:
    gateways = [cluster("gateway"), cluster("gateway")]
    first = cluster("worker")
    with Load(gateways, CLIENTS) as load:
        load.progress(5, 30, "5 batches per client")
        wait_for(lambda: list(lease_owners(postgres_url).values()) == [2], 15, "one worker")
        cluster("worker")
        wait_for(
            lambda: sorted(lease_owners(postgres_url).values()) == [1, 1],
            15,
            "the partitions to spread over both workers",
        )
        load.progress(5, 30, "5 more batches per client")
    assert_exactly_once_in_order(caught_up(first), load.clients)
    assert_delivered_at_least_once(sink, load.clients)
