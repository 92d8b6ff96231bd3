"""The columnar path on the real engines: the same events, loaded once with it and once per
message only, leave the same rows and discards in the warehouse — text that CSV and Arrow must
carry as it is (quotes, commas, newlines, empty strings, accents), doubles, big integers,
booleans, nulls, timestamps in other forms, and values that do not fit their column."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from mainstem.warehouse.dialects import Dialect
from mainstem.warehouse.dialects.duckdb import DuckDB
from mainstem.warehouse.dialects.postgres import Postgres
from mainstem.warehouse.loader import Loader
from tests.warehouse.conftest import (
    Pipeline,
    drop_postgres_database,
    make_postgres_database,
    query,
)


@pytest.fixture(params=["duckdb", "postgres"])
def twins(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Dialect, Dialect]]:
    if request.param == "duckdb":
        yield DuckDB(tmp_path / "columnar.duckdb"), DuckDB(tmp_path / "per-message.duckdb")
        return
    (url, name), (url2, name2) = make_postgres_database(), make_postgres_database()
    try:
        yield Postgres(url), Postgres(url2)
    finally:
        drop_postgres_database(name)
        drop_postgres_database(name2)


def _track(i: int, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"t{i}",
        "userId": f"u{i % 3}",
        "event": "Order Completed" if i % 2 else "Product Viewed",
        "timestamp": "2024-05-01T09:59:59.123Z",
        "context": {"ip": "203.0.113.7", "page": {"path": f"/p/{i}"}, "locale": "nl-NL"},
        "properties": properties,
    }


def _page(i: int, **properties: Any) -> dict[str, Any]:
    return {
        "type": "page",
        "messageId": f"p{i}",
        "anonymousId": f"a{i}",
        "name": "Home",
        "context": {"ip": "203.0.113.8"},
        "properties": properties,
    }


_FIRST_PROPERTIES: dict[str, Any] = {
    "total": 10.5,
    "count": 2,
    "note": "x",
    "paid": True,
    "tags": ["a"],
    "at": "2024-05-01T10:00:00Z",
    "code": 5,
    "amount": 3,
}
FIRST = [
    _track(1, **_FIRST_PROPERTIES),
    _track(2, **_FIRST_PROPERTIES),
    _page(1, path="/", name="Home", referrer=""),
    _page(4, path="/", name="Not home", referrer=""),
    {"type": "identify", "messageId": "i1", "userId": "u1", "traits": {"plan": "pro"}},
    {"type": "alias", "messageId": "l1", "userId": "u1", "previousId": "a1"},
    {"type": "screen", "messageId": "s1", "userId": "u1", "name": "Main", "properties": {}},
]
SECOND = [
    _track(3, total=0.1, count=-(2**62), note='say "hi", then\nleave', paid=False, tags=[]),
    _track(4, total=1e300, count=7, note="", paid=None, tags=["é", "ü"], at="2024-05-01"),
    _track(5, total=3.0, note="ünïcødé ✓", paid=True, at="2024-05-01T12:00:00+02:00"),
    _track(6, note="a,b", code="A1", amount=2.5, at="yesterday"),
    _track(7, total=-0.0, count=None, note="\\N", paid=True, tags=["a", None], amount=2.0),
    _page(2, path="/cart", name="Home", referrer="https://example.com/?a=1,b=2"),
    _page(3, path="", name="Other", referrer=None),
    {"type": "identify", "messageId": "i2", "userId": "u2", "traits": {"plan": None}},
    {"type": "alias", "messageId": "l2", "userId": "u2", "previousId": "a2"},
    {"type": "screen", "messageId": "s2", "userId": "u2", "name": "Main", "properties": {}},
]


def _contents(dialect: Dialect) -> dict[str, list[tuple[Any, ...]]]:
    tables = query(
        dialect,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema = 'web' ORDER BY table_name",
    )
    out: dict[str, list[tuple[Any, ...]]] = {}
    for schema, table in tables:
        columns = [
            str(row[0])
            for row in query(
                dialect,
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                f"'{schema}' AND table_name = '{table}' ORDER BY ordinal_position",
            )
            if row[0] not in ("uuid_ts", "loaded_at")
        ]
        picks = ", ".join(f'"{c}"' for c in columns)
        rows = query(dialect, f'SELECT {picks} FROM "{schema}"."{table}" ORDER BY id')
        out[table] = [tuple(columns), *rows]
    out["discards"] = query(
        dialect,
        "SELECT schema_name, table_name, column_name, id, received_at, reason, value, path "
        "FROM _mainstem.discards ORDER BY id, column_name",
    )
    return out


def test_the_columnar_path_leaves_what_the_per_message_path_leaves(
    pipeline: Pipeline, twins: tuple[Dialect, Dialect]
) -> None:
    fast, reference = twins
    columnar = Loader(pipeline.store, fast)
    per_message = Loader(pipeline.store, reference, columnar=False)
    pipeline.send(FIRST)
    assert columnar.run_once().columnar  # new tables and columns too
    per_message.run_once()
    pipeline.send(SECOND)
    loaded = columnar.run_once()
    assert loaded.columnar
    assert loaded.discards == 4  # code 'A1', amount 2.5, at '2024-05-01' and 'yesterday'
    per_message.run_once()
    got, expected = _contents(fast), _contents(reference)
    assert got == expected
    notes = {}
    for table in ("order_completed", "product_viewed"):
        header, *rows = got[table]
        notes.update({row[0]: row[header.index("note")] for row in rows})
    assert notes == {
        "t1": "x",
        "t2": "x",
        "t3": 'say "hi", then\nleave',
        "t4": "",
        "t5": "ünïcødé ✓",
        "t6": "a,b",
        "t7": "\\N",
    }


def test_a_backlog_loads_every_event_once_while_the_next_batch_is_split_ahead(
    pipeline: Pipeline, twins: tuple[Dialect, Dialect]
) -> None:
    fast, _ = twins
    pipeline.send(FIRST)
    Loader(pipeline.store, fast).run_once()
    pipeline.send([_track(i, **_FIRST_PROPERTIES) for i in range(10, 17)])
    splits: list[str] = []
    loader = Loader(pipeline.store, fast, batch_events=2, checkpoint=splits.append)
    assert loader.sync() == 7
    assert query(fast, "SELECT count(*), count(DISTINCT id) FROM web.tracks") == [(9, 9)]
    loads = query(
        fast, "SELECT first_seq, last_seq, events FROM _mainstem.loads ORDER BY first_seq"
    )
    assert [events for *_, events in loads] == [7, 2, 2, 2, 1]
    assert all(a[1] + 1 == b[0] for a, b in pairwise(loads))
    assert "ddl" not in " ".join(splits)
