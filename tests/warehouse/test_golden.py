"""Golden: the fixed corpus lands as exactly these tables, columns, types and rows, on DuckDB and
on PostgreSQL (reference §7)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mainstem.warehouse.dialects import Dialect
from mainstem.warehouse.loader import Loader
from tests.warehouse.conftest import Pipeline, query
from tests.warehouse.corpus import CORPUS

SYSTEM = [
    ("id", "varchar"),
    ("anonymous_id", "varchar"),
    ("user_id", "varchar"),
    ("received_at", "timestamp"),
    ("sent_at", "timestamp"),
    ("timestamp", "timestamp"),
    ("original_timestamp", "timestamp"),
    ("uuid_ts", "timestamp"),
    ("loaded_at", "timestamp"),
]
PROFILE = [("id", "varchar"), ("received_at", "timestamp"), ("uuid_ts", "timestamp")]
PROFILE += [("loaded_at", "timestamp")]
LIBRARY = [("context_library_name", "varchar"), ("context_library_version", "varchar")]
EVENT = [("event", "varchar"), ("event_text", "varchar")]

TABLES: dict[str, list[tuple[str, str]]] = {
    "_101_signed_up": SYSTEM + EVENT + LIBRARY,
    "accounts": [*PROFILE, ("name", "varchar"), ("employees", "integer"), ("plan", "varchar")],
    "aliases": [*SYSTEM, ("previous_id", "varchar"), *LIBRARY],
    "groups": [
        *SYSTEM,
        ("group_id", "varchar"),
        *LIBRARY,
        ("name", "varchar"),
        ("employees", "integer"),
        ("plan", "varchar"),
    ],
    "identifies": [
        *SYSTEM,
        *LIBRARY,
        ("context_ip", "varchar"),
        ("email", "varchar"),
        ("first_name", "varchar"),
        ("age", "integer"),
        ("premium", "boolean"),
        ("created_at", "timestamp"),
        ("address_city", "varchar"),
        ("address_postal_code", "varchar"),
        ("_id", "varchar"),
    ],
    "order_completed": [
        *SYSTEM,
        *EVENT,
        *LIBRARY,
        ("order_id", "varchar"),
        ("total", "float"),
        ("revenue", "integer"),
        ("currency", "varchar"),
        ("products", "varchar"),
        ("shipping_method", "varchar"),
        ("shipping_cost", "float"),
        ("_user_id", "varchar"),
        ("_order", "integer"),
    ],
    "pages": [
        *SYSTEM,
        ("name", "varchar"),
        ("category", "varchar"),
        *LIBRARY,
        ("context_page_path", "varchar"),
        ("context_page_url", "varchar"),
        ("context_page_title", "varchar"),
        ("context_user_agent", "varchar"),
        ("context_campaign_name", "varchar"),
        ("context_campaign_source", "varchar"),
        ("path", "varchar"),
        ("url", "varchar"),
        ("keywords", "varchar"),
    ],
    "screens": [
        *SYSTEM,
        ("name", "varchar"),
        ("category", "varchar"),
        *LIBRARY,
        ("context_os_name", "varchar"),
        ("variation", "varchar"),
    ],
    "tracks": SYSTEM + EVENT + LIBRARY,
    "users": [
        *PROFILE,
        ("email", "varchar"),
        ("first_name", "varchar"),
        ("age", "integer"),
        ("premium", "boolean"),
        ("created_at", "timestamp"),
        ("address_city", "varchar"),
        ("address_postal_code", "varchar"),
        ("_id", "varchar"),
    ],
}

AT = datetime(2024, 5, 1, 10, 0)  # receivedAt = sentAt of the batch
T1 = datetime(2024, 5, 1, 9, 59, 59, 500000)
T2 = datetime(2024, 5, 1, 9, 59, 59, 750000)
JS = ("analytics.js", "next-1.84.1")
UNKNOWN = ("unknown", "unknown")

# Rows without uuid_ts and loaded_at (the load time), ordered by id.
ROWS: dict[str, list[tuple[Any, ...]]] = {
    "_101_signed_up": [
        ("t-3", "anon-2", None, AT, AT, AT, None, "_101_signed_up", "101 Signed Up", *UNKNOWN)
    ],
    "accounts": [("acme", AT, "Acme", 120, "pro")],
    "aliases": [("a-1", None, "user-1", AT, AT, AT, None, "anon-1", *UNKNOWN)],
    "groups": [("g-1", None, "user-1", AT, AT, AT, None, "acme", *UNKNOWN, "Acme", 120, "pro")],
    "identifies": [
        (
            *("i-1", "anon-1", "user-1", AT, AT, AT, None, *JS, "203.0.113.7"),
            *("ada@example.com", "Ada", 36, True, datetime(2023, 1, 2, 3, 4, 5)),
            *("London", "N1", "crm-7"),
        ),
        ("i-2", None, "user-1", AT, AT, AT, None, *UNKNOWN, None, None, "Augusta", None, False)
        + (None,) * 4,
        ("i-3", "anon-9", None, AT, AT, AT, None, *UNKNOWN) + (None,) * 9,
    ],
    "order_completed": [
        (
            *("t-1", None, "user-1", AT, AT, T1, T1, "order_completed", "Order Completed", *JS),
            *("o-1", 27.5, 25, "USD", '[{"product_id":"sku-1","price":12.5}]', "express", 2.5),
            *("spoofed", 1),
        ),
        (
            *("t-2", None, "user-1", AT, AT, T2, T2, "order_completed", "order_completed", *JS),
            *("o-2", 10.0, 9, None, None, None, None, None, None),
        ),
    ],
    "pages": [
        (
            *("p-1", "anon-1", None, AT, AT, datetime(2024, 5, 1, 9, 59, 58)),
            *(datetime(2024, 5, 1, 9, 59, 58), "Pricing", "Docs", *JS, "/pricing"),
            *("https://example.com/pricing", "Pricing", "Mozilla/5.0", "spring", "news"),
            *("/pricing", "https://example.com/pricing", '["plans","cost"]'),
        )
    ],
    "screens": [
        (
            "s-1",
            None,
            "user-1",
            AT,
            AT,
            AT,
            None,
            "Home",
            None,
            "analytics-ios",
            "4.1",
            "iOS",
            "blue",
        )
    ],
    "tracks": [
        ("t-1", None, "user-1", AT, AT, T1, T1, "order_completed", "Order Completed", *JS),
        ("t-2", None, "user-1", AT, AT, T2, T2, "order_completed", "order_completed", *JS),
        ("t-3", "anon-2", None, AT, AT, AT, None, "_101_signed_up", "101 Signed Up", *UNKNOWN),
    ],
    "users": [
        (
            "user-1",
            AT,
            "ada@example.com",
            "Augusta",
            36,
            False,
            datetime(2023, 1, 2, 3, 4, 5),
            "London",
            "N1",
            "crm-7",
        )
    ],
}

ENGINE_TYPES = {
    "duckdb": {
        "varchar": "VARCHAR",
        "timestamp": "TIMESTAMP",
        "integer": "BIGINT",
        "float": "DOUBLE",
        "boolean": "BOOLEAN",
    },
    "postgres": {
        "varchar": "text",
        "timestamp": "timestamp without time zone",
        "integer": "bigint",
        "float": "double precision",
        "boolean": "boolean",
    },
}


def _columns(dialect: Dialect) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for table, column, db_type in query(
        dialect,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'web' ORDER BY table_name, ordinal_position",
    ):
        found.setdefault(table, []).append((column, db_type))
    return found


def test_the_corpus_lands_as_segment_tables_columns_types_and_rows(
    pipeline: Pipeline, dialect: Dialect
) -> None:
    pipeline.send(CORPUS)
    result = Loader(pipeline.store, dialect).run_once()
    assert (result.events, result.rows, result.duplicates, result.discards) == (10, 15, 0, 0)
    types = ENGINE_TYPES[dialect.name]
    assert _columns(dialect) == {
        table: [(name, types[kind]) for name, kind in columns] for table, columns in TABLES.items()
    }
    for table, rows in ROWS.items():
        names = [name for name, _ in TABLES[table] if name not in ("uuid_ts", "loaded_at")]
        columns = ", ".join(f'"{name}"' for name in names)
        found = query(dialect, f'SELECT {columns} FROM web."{table}" ORDER BY id')
        assert found == rows, table
        stamps = query(dialect, f'SELECT DISTINCT uuid_ts = loaded_at FROM web."{table}"')
        assert stamps == [(True,)], table


def test_a_second_run_finds_nothing_and_changes_nothing(
    pipeline: Pipeline, dialect: Dialect
) -> None:
    pipeline.send(CORPUS)
    loader = Loader(pipeline.store, dialect)
    loader.run_once()
    assert loader.run_once().events == 0
    assert query(dialect, "SELECT count(*) FROM web.tracks") == [(3,)]
    assert query(dialect, "SELECT stream, seq FROM _mainstem.positions") == [("events", 10)]
    changes = query(
        dialect,
        "SELECT change, table_name FROM _mainstem.schema_changes ORDER BY changed_at",
    )
    assert changes == [("create_schema", "")] + [
        ("create_table", table)
        for table in [
            "pages",
            "identifies",
            "users",
            "tracks",
            "order_completed",
            "_101_signed_up",
            "screens",
            "groups",
            "accounts",
            "aliases",
        ]
    ]
