"""Scale-out benchmark: ingest and end-to-end events/s on PostgreSQL with 1, 2 and 4 gateway
processes (and as many workers), next to SQLite and PostgreSQL's own COPY ceiling, in one run.

    cd bench && ../.venv/bin/python scale.py         # what `make bench` runs last
    cd bench && ../.venv/bin/python scale.py --duration 10 --gateways 1,2

* ``COPY ceiling``: one process COPYing the very rows the gateways write (one request body of
  100 events per row) into a table shaped like the log — what PostgreSQL can take on this
  machine, in events/s.
* ``ingest``: ``POST /v1/batch`` (100 events per request) from one ``wrk`` per gateway for
  ``--duration`` seconds; events answered 200 per second.
* ``end-to-end``: the same events divided by the time from the start of the load until the
  workers have processed all of them (``log_lag`` 0).

Each scenario gets a fresh PostgreSQL schema (or data directory), dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from ingest import Traffic, free_port, run_wrk, write_traffic  # type: ignore[import-not-found]
from report import write_section  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parent.parent
BASE_URL = os.environ.get(
    "MAINSTEM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
WRITE_KEY = "bench-write-key"
WORKSPACE = f"""\
admin_token: bench-admin-token
sources:
  - id: web
    name: Bench
    write_key: {WRITE_KEY}
"""


def schema_url(schema: str) -> str:
    return f"{BASE_URL}?options=-csearch_path%3D{schema}&application_name={schema}"


def create_schema() -> str:
    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return schema


def drop_schema(schema: str) -> None:
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (schema,),
        )
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def copy_ceiling(seconds: float, bodies: list[bytes], events_per_row: int) -> float:
    """Events/s PostgreSQL takes when one process COPYs the very rows the gateways write (one
    request body of ``events_per_row`` events per row) in 100-row transactions."""
    schema = create_schema()
    try:
        with psycopg.connect(schema_url(schema), autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE log (partition TEXT, seq BIGINT, source_id TEXT, received_at "
                "BIGINT, path_type TEXT, client BOOLEAN, ip TEXT, body BYTEA)"
            )
            conn.execute("CREATE INDEX ON log (partition, seq)")
            rows, seq, started = 0, 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                with (
                    conn.transaction(),
                    conn.cursor() as cur,
                    cur.copy("COPY log FROM STDIN (FORMAT BINARY)") as copy,
                ):
                    copy.set_types(
                        ["text", "int8", "text", "int8", "text", "bool", "text", "bytea"]
                    )
                    for _ in range(100):
                        seq += 1
                        body = bodies[seq % len(bodies)]
                        copy.write_row(("0", seq, "web", 0, None, False, "127.0.0.1", body))
                rows += 100
            return rows * events_per_row / (time.perf_counter() - started)
    finally:
        drop_schema(schema)


class Node:
    def __init__(self, config: Path, workdir: Path, role: str, url: str | None) -> None:
        self.port = free_port()
        env = {**os.environ}
        if url:
            env["MAINSTEM_DATABASE_URL"] = url
        argv = [sys.executable, "-m", "mainstem", "serve", "--config", str(config)]
        argv += ["--port", str(self.port), "--role", role, "--log-level", "warning"]
        argv += ["--data-dir", str(workdir / f"data-{self.port}")]
        self.log = (workdir / f"{role}-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"mainstem serve --role {role} did not start")

    def lag(self) -> int:
        return int(httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5).json()["log_lag"])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self.log.close()


def scenario(
    traffic: Traffic, workdir: Path, gateways: int, url: str | None, seconds: float
) -> tuple[float, float]:
    """(ingest events/s, end-to-end events/s)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "mainstem.yaml"
    config.write_text(WORKSPACE, encoding="utf-8")
    if url is None:
        nodes = [Node(config, workdir, "all", None)]
        front = nodes
    else:
        front = [Node(config, workdir, "gateway", url) for _ in range(gateways)]
        nodes = [*front, *(Node(config, workdir, "worker", url) for _ in range(gateways))]
    try:
        connections = max(2, 16 // len(front))
        started = time.perf_counter()
        with ThreadPoolExecutor(len(front)) as pool:
            results = list(
                pool.map(lambda n: run_wrk(n.port, traffic, connections, seconds), front)
            )
        ingest_seconds = time.perf_counter() - started
        events = sum(r.ok_requests for r in results) * traffic.events_per_request
        while front[0].lag() > 0:
            time.sleep(0.1)
        total = time.perf_counter() - started
        return events / ingest_seconds, events / total
    finally:
        for node in nodes:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--gateways", default="1,2,4")
    parser.add_argument("--no-write", action="store_true", help="Do not update the docs.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mainstem-scale-") as tmp:
        work = Path(tmp)
        traffic = write_traffic(
            work / "traffic", "batch", WRITE_KEY, bodies=64, batch_size=100, seed=7
        )
        bodies = [path.read_bytes() for path in sorted(traffic.directory.glob("body-*.json"))]
        ceiling = copy_ceiling(args.duration / 2, bodies, traffic.events_per_request)
        print(f"PostgreSQL COPY ceiling: {ceiling:,.0f} events/s (the gateways' rows)")
        rows = [("sqlite", 1, *scenario(traffic, work / "sqlite", 1, None, args.duration))]
        for count in (int(part) for part in args.gateways.split(",")):
            schema = create_schema()
            try:
                figures = scenario(
                    traffic, work / f"pg{count}", count, schema_url(schema), args.duration
                )
            finally:
                drop_schema(schema)
            rows.append(("postgresql", count, *figures))
    lines = [
        "## Scale-out",
        "",
        "<!-- Written by bench/scale.py: this section is replaced on every run. -->",
        "",
        f"Command: `cd bench && ../.venv/bin/python scale.py --duration {args.duration:g} "
        f"--gateways {args.gateways}`  ",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- nproc: {os.cpu_count()}; PostgreSQL on the same machine; `POST /v1/batch` with 100 "
        f"events per request from one `wrk` per gateway for {args.duration:g} s",
        "- *COPY ceiling*: one process COPYing the very rows the gateways write (one request "
        "body of 100 events per row, 100 rows per transaction) into a table shaped like the "
        "log — events/s PostgreSQL takes on this machine",
        "- *end-to-end*: the same events divided by the time until the workers processed all "
        "of them (`log_lag` 0)",
        "",
        f"COPY ceiling: **{ceiling:,.0f} events/s**",
        "",
        "| backend | gateways (+ workers) | ingest events/s | end-to-end events/s "
        "| ingest ÷ COPY ceiling |",
        "|---|--:|--:|--:|--:|",
    ]
    for backend, count, ingest, e2e in rows:
        ratio = f"{ingest / ceiling:.2f}" if backend == "postgresql" else "-"
        lines.append(f"| {backend} | {count} | {ingest:,.0f} | {e2e:,.0f} | {ratio} |")
    best = max((ingest for backend, _, ingest, _ in rows if backend == "postgresql"), default=0)
    lines += [
        "",
        f"Target ≥ 0.5 of the COPY ceiling at ingest: best {best / ceiling:.2f} — "
        + ("met" if best >= 0.5 * ceiling else "NOT met"),
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_section("Scale-out", section)


if __name__ == "__main__":
    main()
