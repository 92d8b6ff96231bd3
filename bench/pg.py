"""Throwaway PostgreSQL databases for the benchmarks, on the server ``make test`` starts
(``MAINSTEM_BENCH_PG`` names another)."""

from __future__ import annotations

import os
import uuid

import psycopg

PG = os.environ.get("MAINSTEM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_database() -> tuple[str, str]:
    """A new empty database: (its URL, its name for :func:`pg_drop`)."""
    name = f"mainstem_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return PG.rsplit("/", 1)[0] + "/" + name, name


def pg_drop(name: str) -> None:
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
