"""A fresh PostgreSQL schema per test, on the real server (``make postgres`` starts it).

Tests fail, never skip, when PostgreSQL is unreachable: a storage backend that is not tested
is not supported.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

BASE_URL = os.environ.get("MAINSTEM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def schema_url(schema: str) -> str:
    """The base URL with ``search_path`` set to ``schema`` for every connection made from it."""
    separator = "&" if "?" in BASE_URL else "?"
    return f"{BASE_URL}{separator}options=-csearch_path%3D{schema}&application_name={schema}"


@contextmanager
def fresh_schema(prefix: str = "t") -> Iterator[str]:
    """Create an empty schema, yield a URL that uses it, drop it (and everything in it)."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(BASE_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema_url(schema)
    finally:
        with psycopg.connect(BASE_URL, autocommit=True, connect_timeout=5) as conn:
            # Sessions of processes a test killed may still hold locks for a moment.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (schema,),
            )
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
