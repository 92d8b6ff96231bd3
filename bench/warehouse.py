"""Warehouse load rate: events from the event store into DuckDB and PostgreSQL, next to a raw
bulk insert of the very same rows (already flattened and typed) in the same run. Part of
`make bench`.

Usage: .venv/bin/python bench/warehouse.py [--events 100000] [--runs 3] [--no-write]
Writes the `## Warehouse` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from mainstem.message import Request, normalize
from mainstem.storage import Batch, StoredEvent
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from mainstem.warehouse import batch as wbatch
from mainstem.warehouse.dialects import Dialect
from mainstem.warehouse.dialects.duckdb import DuckDB
from mainstem.warehouse.dialects.postgres import Postgres
from mainstem.warehouse.loader import Loader, Split, now_text
from mainstem.warehouse.schema import CreateSchema, CreateTable
from pg import pg_database, pg_drop  # type: ignore[import-not-found]
from report import write_section  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parent.parent
BATCH = 10_000
RECEIVED = 1_714_557_600_000_000


def message(i: int, rng: random.Random) -> dict[str, Any]:
    context = {
        "library": {"name": "analytics.js", "version": "next-1.84.1"},
        "page": {
            "path": f"/products/{i % 500}",
            "url": f"https://shop.example.com/products/{i % 500}",
            "title": "Product",
            "referrer": "https://www.google.com/",
        },
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari",
        "locale": "en-US",
        "timezone": "Europe/Amsterdam",
        "campaign": {"name": "spring", "source": "newsletter", "medium": "email"},
        "ip": "203.0.113.7",
    }
    base: dict[str, Any] = {
        "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
        "anonymousId": f"anon-{i % 20000}",
        "timestamp": "2024-05-01T09:59:59.123Z",
        "context": context,
    }
    kind = rng.random()
    if kind < 0.7:
        return {
            **base,
            "type": "track",
            "userId": f"user-{i % 5000}",
            "event": rng.choice(["Product Viewed", "Product Added", "Order Completed"]),
            "properties": {
                "product_id": f"sku-{i % 900}",
                "price": round(rng.random() * 100, 2),
                "quantity": rng.randint(1, 5),
                "currency": "USD",
                "category": "Games",
                "in_stock": True,
                "tags": ["a", "b"],
            },
        }
    if kind < 0.9:
        return {
            **base,
            "type": "page",
            "name": "Product",
            "properties": {"path": context["page"]["path"], "title": "Product"},
        }
    return {
        **base,
        "type": "identify",
        "userId": f"user-{i % 5000}",
        "traits": {"email": f"u{i % 5000}@example.com", "plan": "pro", "logins": i % 40},
    }


def fill_store(path: Path, count: int) -> SqlitePipelineStore:
    store = SqlitePipelineStore(path, fsync=False)
    rng = random.Random(7)
    encode = msgspec.json.Encoder().encode
    request = Request(received_at=RECEIVED)
    for seq, start in enumerate(range(0, count, 5000), start=1):
        out = Batch(partition="0", offset=seq)
        for i in range(start, min(count, start + 5000)):
            raw = message(i, rng)
            msg = normalize(raw, Request(received_at=RECEIVED + i * 10), seed=f"0:{i}")
            assert isinstance(msg, dict)
            out.events.append(("web", StoredEvent.of(msg, request.received_at, encode(msg))))
        store.commit(out)
    return store


def loader_rate(store: SqlitePipelineStore, dialect: Dialect) -> tuple[float, int, int]:
    loader = Loader(store, dialect, batch_events=BATCH)
    started = time.perf_counter()
    events = loader.sync()
    elapsed = time.perf_counter() - started
    rows = sum(
        int(r[0])
        for r in dialect.connect(read_only=True).query(
            "SELECT row_count FROM _mainstem.loads WHERE status = 'ok'"
        )[1]
    )
    return elapsed, events, rows


PHASES = ("read", "split", "typing")
"""The Python phases of a load, as timed by :func:`prepared_batches`: event-store read,
``Split.of`` (the Arrow parse and flattening of the columnar path, JSON decode and rows of the
per-message one) and ``Split.prepare`` (duplicate check against nothing, typing per column)."""


def prepared_batches(
    store: SqlitePipelineStore, dialect: Dialect
) -> tuple[list[wbatch.Prepared], dict[str, float], int]:
    """The loader's own rows for every batch, typed against the loaded warehouse's catalog, the
    seconds each phase of that took (see :data:`PHASES`), and how many batches took the
    columnar path."""
    from mainstem.storage import EventQuery

    seconds = dict.fromkeys(PHASES, 0.0)
    session = dialect.connect(read_only=True)
    try:
        schemas, catalog = session.catalog(["web"])
    finally:
        session.close()
    out: list[wbatch.Prepared] = []
    after = columnar = 0
    gc.disable()  # as the loader does for a load
    try:
        while True:
            started = time.perf_counter()
            events = store.events(EventQuery(after=after, limit=BATCH))
            if not events:
                return out, seconds, columnar
            after = events[-1].seq
            read = time.perf_counter()
            split = Split.of(events, dialect.allow_nul)
            planned = split.plan(schemas, catalog)
            columnar += split.fast is not None
            decided = time.perf_counter()
            out.append(split.prepare(planned, {}, now_text()))
            typed = time.perf_counter()
            took = (read - started, decided - read, typed - decided)
            for phase, spent in zip(PHASES, took, strict=True):
                seconds[phase] += spent
    finally:
        gc.enable()


def raw_rate(dialect: Dialect, source: Dialect, prepared: list[wbatch.Prepared]) -> float:
    """Seconds to bulk-insert the same rows into empty copies of the same tables."""
    session = source.connect(read_only=True)
    try:
        ddl = session.catalog(["web"])[1]
    finally:
        session.close()
    target = dialect.connect()
    try:
        # The loader's own DDL, so the tables are the same, indexes included (PostgreSQL keeps
        # one on received_at, and one on id for users and accounts).
        target.bootstrap()
        target.apply(CreateSchema("web"), "raw", now_text())
        for (schema, table), columns in ddl.items():
            step = CreateTable(schema, table, tuple(columns.items()))
            target.apply(step, "raw", now_text())
        started = time.perf_counter()
        for item in prepared:
            target.begin()
            for load in item.loads:
                target.insert(load)
            target.commit()
        # Closed inside the timing, as the loader's sync closes its session: DuckDB moves what
        # is still in its WAL into the file then (it did so every ~16 MB of WAL meanwhile).
        target.close()
        return time.perf_counter() - started
    finally:
        target.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="keep the best of this many runs")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        store = fill_store(root / "pipeline.db", args.events)
        print(f"event store filled with {args.events} events in {time.perf_counter() - t0:.1f}s")
        results = []
        shares: list[tuple[str, int, float, dict[str, float], float]] = []
        paths: list[tuple[str, int, int]] = []
        for engine in ("duckdb", "postgres"):
            best: dict[str, float] = {}
            for run in range(args.runs):
                names: list[str] = []
                if engine == "duckdb":
                    dialect: Dialect = DuckDB(root / f"warehouse-{run}.duckdb")
                    raw: Dialect = DuckDB(root / f"raw-{run}.duckdb")
                else:
                    url, name = pg_database()
                    url2, name2 = pg_database()
                    names = [name, name2]
                    dialect, raw = Postgres(url), Postgres(url2)
                try:
                    took, events, rows = loader_rate(store, dialect)
                    prepared, timed, columnar = prepared_batches(store, dialect)
                    raw_rows = sum(len(load) for p in prepared for load in p.loads)
                    timed["loader"] = took
                    timed["raw"] = raw_rate(raw, dialect, prepared)
                finally:
                    for name in names:
                        pg_drop(name)
                for key, seconds in timed.items():
                    best[key] = min(best.get(key, seconds), seconds)
            elapsed, raw_elapsed = best.pop("loader"), best.pop("raw")
            phases = best
            results.append((engine, events, rows, elapsed, raw_rows, raw_elapsed))
            paths.append((engine, columnar, len(prepared)))
            shares.append((engine, events, elapsed, phases, raw_elapsed))
            print(
                f"{engine}: loader {events / elapsed:,.0f} events/s {rows / elapsed:,.0f} rows/s; "
                f"raw bulk {raw_rows / raw_elapsed:,.0f} rows/s"
            )
        store.close()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines += [
        "## Warehouse",
        "",
        "<!-- Written by bench/warehouse.py: this section is replaced on every run. -->",
        "",
        "Command: `.venv/bin/python bench/warehouse.py`  ",
        f"Date: {when}",
        "",
        f"- nproc: {os.cpu_count()}; Python {platform.python_version()}",
        f"- {args.events:,} events in the event store (SQLite), track/page/identify 70/20/10, "
        "~1 kB normalized JSON each with ~20 context fields; micro-batches of "
        f"{BATCH:,} events; one source",
        f"- each figure is the best of {args.runs} runs (a fresh warehouse each), loader and raw "
        "bulk interleaved",
        f"- load average when it ended: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
        "(other work on the machine slows the loader and the raw bulk insert alike; the "
        "ratio is the figure to compare between runs)",
        "- *loader*: `Loader.sync()` from the event store: read; parse, flatten, name and type "
        "by column in Arrow (the columnar path; users merged by column too, as no identify here "
        "holds a null), the next batch read and split on a second thread while this one loads; "
        "plan and run the DDL, duplicate check, bulk insert (DuckDB: Arrow arrays, one "
        "`INSERT … SELECT` per table and one `MERGE` for users / PostgreSQL: CSV that Arrow "
        "writes, `COPY … (FORMAT csv)`, users staged and merged), history and position, one "
        "transaction per batch, opening and closing the warehouse as it does in production",
        "- batches the columnar path took in the phase-timing pass: "
        + "; ".join(f"{engine} {taken} of {total}" for engine, taken, total in paths),
        "- *raw bulk*: the very same rows (the loader's own typed columns) inserted with the "
        "same bulk path, the fastest this code has for each engine, into empty tables made by "
        "the loader's own DDL (the same columns and indexes), one transaction per batch, on one "
        "connection, closed at the end inside the timing as the loader's is (DuckDB then "
        "checkpoints what is still in its WAL)",
        "",
        "| engine | events/s (loader) | rows/s (loader) | rows/s (raw bulk) | loader ÷ raw |",
        "|---|--:|--:|--:|--:|",
    ]
    for engine, events, rows, elapsed, raw_rows, raw_elapsed in results:
        ratio = (rows / elapsed) / (raw_rows / raw_elapsed)
        lines.append(
            f"| {engine} | {events / elapsed:,.0f} | {rows / elapsed:,.0f} | "
            f"{raw_rows / raw_elapsed:,.0f} | {ratio:.2f} |"
        )
    lines += [
        "",
        "Where a load's time goes, in ms per 10,000-event batch: the loader as a whole, then "
        "its phases on the same batches (event-store read; split — the Arrow parse and "
        "flattening, and the per-message decode and rows; typing per column) and the raw bulk "
        "insert of their rows. Each is timed in a pass of its own, so they need not add up "
        "to the loader's time; what the loader does besides is the plan and DDL, the "
        "duplicate check, upserts, history, commits and opening the warehouse.",
        "",
        "| engine | loader | read | split | typing | raw bulk insert |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for engine, events, elapsed, phases, raw_elapsed in shares:
        per = BATCH / events * 1000
        cells = [elapsed, *(phases[p] for p in PHASES), raw_elapsed]
        lines.append(f"| {engine} | " + " | ".join(f"{x * per:,.0f}" for x in cells) + " |")
    duck = results[0]
    duck_rows = duck[2] / duck[3]
    lines += [
        "",
        "Targets:",
        "",
        f"- ≥ 100,000 rows/s into DuckDB: {duck_rows:,.0f} — "
        + ("met" if duck_rows >= 100_000 else "NOT met"),
    ]
    for engine, _, rows, elapsed, raw_rows, raw_elapsed in results:
        ratio = (rows / elapsed) / (raw_rows / raw_elapsed)
        lines.append(
            f"- {engine} ≥ 0.6 of the raw bulk rate: {ratio:.2f} — "
            + ("met" if ratio >= 0.6 else "NOT met")
        )
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_section("Warehouse", section)


if __name__ == "__main__":
    main()
