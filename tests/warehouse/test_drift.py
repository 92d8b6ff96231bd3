"""Drift: whatever the data does, every accepted event lands exactly once and the loader stays
healthy — type changes, names that collide, names of system columns, very many properties, and
a crash before every DDL and DML step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from mainstem.warehouse.dialects import Dialect
from mainstem.warehouse.loader import Loader
from mainstem.warehouse.schema import MAX_COLUMNS
from tests.warehouse.conftest import Pipeline, query


def track(message_id: str, name: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "userId": "u",
        "event": name,
        "properties": properties,
    }


def discards(dialect: Dialect) -> list[tuple[Any, ...]]:
    return query(
        dialect,
        "SELECT table_name, column_name, id, reason, value, path FROM _mainstem.discards "
        "ORDER BY id, column_name",
    )


def test_a_property_that_changes_type_keeps_its_column_and_discards_what_does_not_fit(
    pipeline: Pipeline, dialect: Dialect
) -> None:
    loader = Loader(pipeline.store, dialect)
    pipeline.send([track("e1", "Bought", price=5)])
    loader.run_once()
    pipeline.send(
        [
            track("e2", "Bought", price="cheap"),
            track("e3", "Bought", price=5.5),
            track("e4", "Bought", price=True),
            track("e5", "Bought", price=7.0),
        ]
    )
    loader.run_once()
    assert query(dialect, "SELECT id, price FROM web.bought ORDER BY id") == [
        ("e1", 5),
        ("e2", None),
        ("e3", None),
        ("e4", None),
        ("e5", 7),
    ]
    assert discards(dialect) == [
        ("bought", "price", "e2", "not_integer", '"cheap"', ""),
        ("bought", "price", "e3", "not_integer", "5.5", ""),
        ("bought", "price", "e4", "not_integer", "true", ""),
    ]
    assert loader.last_error is None


def test_event_names_that_differ_in_case_or_punctuation_share_one_table(
    pipeline: Pipeline, dialect: Dialect
) -> None:
    names = ["Order Completed", "order_completed", "ORDER COMPLETED", "Order-Completed!"]
    pipeline.send([track(f"e{i}", name, n=i) for i, name in enumerate(names)])
    Loader(pipeline.store, dialect).run_once()
    assert query(
        dialect, "SELECT id, event, event_text, n FROM web.order_completed ORDER BY id"
    ) == [(f"e{i}", "order_completed", name, i) for i, name in enumerate(names)]
    assert query(dialect, "SELECT count(*) FROM web.tracks") == [(4,)]


def test_properties_named_like_system_columns_get_an_underscore(
    pipeline: Pipeline, dialect: Dialect
) -> None:
    pipeline.send(
        [
            track(
                "e1",
                "Signed Up",
                id="p-id",
                received_at="soon",
                event="x",
                context={"app": "y"},
                select=1,
                **{"2fa": True},
            )
        ]
    )
    Loader(pipeline.store, dialect).run_once()
    assert query(
        dialect,
        "SELECT id, received_at IS NOT NULL, event, _id, _received_at, _event, _context_app, "
        '_select, "_2fa" FROM web.signed_up',
    ) == [("e1", True, "signed_up", "p-id", "soon", "x", "y", 1, True)]


def test_colliding_keys_keep_the_first_and_discard_the_other(
    pipeline: Pipeline, dialect: Dialect
) -> None:
    pipeline.send([track("e1", "Viewed", orderId="a", order_id="b", **{"日本": 3})])
    Loader(pipeline.store, dialect).run_once()
    assert query(dialect, "SELECT order_id FROM web.viewed") == [("a",)]
    assert discards(dialect) == [
        ("viewed", "", "e1", "unnamed", "3", "properties.日本"),
        ("viewed", "order_id", "e1", "name_collision", '"b"', "properties.order_id"),
    ]


def test_ten_thousand_distinct_property_names_fill_the_table_and_overflow_to_discards(
    pipeline: Pipeline, dialect: Dialect
) -> None:
    pipeline.send(
        [track(f"e{i:03d}", "Wide", **{f"p{i}_{j}": j for j in range(50)}) for i in range(200)]
    )
    loader = Loader(pipeline.store, dialect)
    loader.run_once()
    pipeline.send([track("f1", "Wide", p0_0=1, fresh=2)])
    loader.run_once()
    columns = query(
        dialect,
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_schema = 'web' AND table_name = 'wide'",
    )
    assert columns == [(MAX_COLUMNS,)]
    assert query(dialect, "SELECT count(*), count(p0_0) FROM web.wide") == [(201, 2)]
    system = 13  # the event columns and two context_library ones
    overflow = 10_000 - (MAX_COLUMNS - system)
    assert query(dialect, "SELECT reason, count(*) FROM _mainstem.discards GROUP BY reason") == [
        ("too_many_columns", overflow + 1)
    ]
    assert loader.last_error is None


LATER = datetime(2024, 5, 1, 10, 0, 1)


class Crash(Exception):
    pass


def _contents(dialect: Dialect) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the `web` schema as sorted (column, value) rows, and the discards."""
    session = dialect.connect(read_only=True)
    try:
        _, catalog = session.catalog(["web"])
        found: dict[str, list[tuple[Any, ...]]] = {}
        for (_, table), types in catalog.items():
            columns = sorted(c for c in types if c not in ("uuid_ts", "loaded_at"))
            cols = ", ".join(f'"{c}"' for c in columns)
            rows = session.query(f'SELECT {cols} FROM web."{table}"')[1]
            found[table] = sorted((tuple(zip(columns, row, strict=True)) for row in rows), key=repr)
        found["_discards"] = session.query(
            "SELECT table_name, column_name, id, reason, value FROM _mainstem.discards "
            "ORDER BY 1, 2, 3"
        )[1]
        return found
    finally:
        session.close()


def _reset(dialect: Dialect) -> None:
    session = dialect.connect()
    try:
        session.query("DROP SCHEMA IF EXISTS web CASCADE")
        session.query("DROP SCHEMA IF EXISTS _mainstem CASCADE")
    finally:
        session.close()


FIRST = [
    track("x1", "Order Completed", total=10),
    {"type": "identify", "messageId": "x2", "userId": "user-1", "traits": {"plan": "gold"}},
]
SECOND = [
    track("x3", "Order Completed", total="free", coupon="SPRING", extra={"depth": 1}),
    {"type": "identify", "messageId": "x4", "userId": "user-1", "traits": {"seats": 3}},
]


def test_a_crash_before_any_step_is_repaired_by_the_next_run(
    pipeline: Pipeline, dialect: Dialect
) -> None:
    pipeline.send(FIRST)
    pipeline.send(SECOND, received_at=1_714_557_601_000_000)
    steps: list[str] = []
    clean = Loader(pipeline.store, dialect, batch_events=2, checkpoint=steps.append)
    clean.sync()
    expected = _contents(dialect)
    assert len(expected["tracks"]) == 2
    assert expected["users"] == [
        (("id", "user-1"), ("plan", "gold"), ("received_at", LATER), ("seats", 3))
    ]
    assert expected["_discards"] == [("order_completed", "total", "x3", "not_integer", '"free"')]
    assert [step.split(" ")[0] for step in steps] == [
        *["ddl:"] * 5,
        *["insert:"] * 3,
        "upsert:",
        "discards",
        "finish",
        "commit",
        *["ddl:"] * 3,
        *["insert:"] * 3,
        "upsert:",
        "discards",
        "finish",
        "commit",
    ]
    for crash_at in range(len(steps)):
        _reset(dialect)
        seen: list[str] = []

        def crash(step: str, seen: list[str] = seen, at: int = crash_at) -> None:
            seen.append(step)
            if len(seen) - 1 == at:
                raise Crash(step)

        with pytest.raises(Crash):
            Loader(pipeline.store, dialect, batch_events=2, checkpoint=crash).sync()
        recovered = Loader(pipeline.store, dialect, batch_events=2)
        recovered.sync()
        assert _contents(dialect) == expected, f"after a crash at {steps[crash_at]!r}"
        assert recovered.last_error is None
        failed = query(dialect, "SELECT status, error FROM _mainstem.loads WHERE status <> 'ok'")
        assert failed in ([], [("failed", f"Crash: {steps[crash_at]}")])


def test_text_with_u0000_is_kept_where_the_engine_can_hold_it(
    pipeline: Pipeline, dialect: Dialect
) -> None:
    pipeline.send([track("e1", "Noted", note="a\x00b", plain="c")])
    Loader(pipeline.store, dialect).run_once()
    if dialect.allow_nul:
        assert query(dialect, "SELECT note, plain FROM web.noted") == [("a\x00b", "c")]
        assert discards(dialect) == []
    else:
        assert query(dialect, "SELECT note, plain FROM web.noted") == [(None, "c")]
        assert discards(dialect) == [("noted", "note", "e1", "not_varchar", '"a\\u0000b"', "")]
