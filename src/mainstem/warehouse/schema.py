"""Desired columns vs the columns the warehouse has → the DDL to run (reference §7.6).

Pure, no I/O. The catalog the dialect reads is the truth: a column keeps the type it has there
(whoever set it), new columns take the type of their first non-null value in the batch, system
columns are added back if missing, and nothing is ever dropped, renamed or retyped. Each step is
idempotent (``IF NOT EXISTS``), so a crash between steps is repaired by planning again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from mainstem.warehouse.rows import LOAD_TIME_COLUMNS, SYSTEM_COLUMNS, Kind
from mainstem.warehouse.types import LogicalType

MAX_COLUMNS: Final = 1500
"""Columns per table. PostgreSQL stops at 1,600 (dropped columns count too) and Redshift at
1,600; past this, values of new columns go to the discards table (``too_many_columns``)."""

Catalog = dict[tuple[str, str], dict[str, LogicalType]]
"""(schema, table) → column → type, in the warehouse's column order."""


@dataclass(frozen=True, slots=True)
class CreateSchema:
    schema: str

    def describe(self) -> str:
        return f"create schema {self.schema}"


@dataclass(frozen=True, slots=True)
class CreateTable:
    schema: str
    table: str
    columns: tuple[tuple[str, LogicalType], ...]

    def describe(self) -> str:
        cols = ", ".join(f"{name} {kind}" for name, kind in self.columns)
        return f"create table {self.schema}.{self.table} ({cols})"


@dataclass(frozen=True, slots=True)
class AddColumns:
    schema: str
    table: str
    columns: tuple[tuple[str, LogicalType], ...]

    def describe(self) -> str:
        cols = ", ".join(f"{name} {kind}" for name, kind in self.columns)
        return f"add to {self.schema}.{self.table}: {cols}"


Step = CreateSchema | CreateTable | AddColumns


@dataclass(slots=True)
class Plan:
    steps: list[Step] = field(default_factory=list)
    columns: Catalog = field(default_factory=dict)
    """Every table the batch touches, with its columns after the steps."""
    overflow: set[tuple[str, str, str]] = field(default_factory=set)
    """(schema, table, column) that will not be created: the table is full."""


def plan(
    schemas: set[str],
    catalog: Catalog,
    tables: Mapping[tuple[str, str], tuple[Kind, Mapping[str, LogicalType]]],
    max_columns: int = MAX_COLUMNS,
) -> Plan:
    """The DDL that lets ``tables`` load into a warehouse with ``catalog``.

    Args:
        schemas: the schemas that exist.
        catalog: the existing tables and their columns.
        tables: (schema, table) → (kind of table, column → the type of its first non-null value
            in the batch, in first-seen order; see :func:`mainstem.warehouse.types.infer`).
        max_columns: columns per table; see :data:`MAX_COLUMNS`.
    """
    result = Plan()
    for schema in sorted({schema for schema, _ in tables} - schemas):
        result.steps.append(CreateSchema(schema))
    for (schema, table), (kind, inferred) in tables.items():
        system = SYSTEM_COLUMNS[kind]
        existing = catalog.get((schema, table))
        final: dict[str, LogicalType] = dict(existing) if existing is not None else {}
        wanted: dict[str, LogicalType] = dict(system)
        for name, kind_ in inferred.items():
            if name not in wanted and name not in LOAD_TIME_COLUMNS:
                wanted[name] = kind_
        new: list[tuple[str, LogicalType]] = []
        for name, type_ in wanted.items():
            if name in final:
                continue
            if len(final) >= max_columns and name not in system:
                result.overflow.add((schema, table, name))
                continue
            final[name] = type_
            new.append((name, type_))
        if existing is None:
            result.steps.append(CreateTable(schema, table, tuple(new)))
        elif new:
            result.steps.append(AddColumns(schema, table, tuple(new)))
        result.columns[schema, table] = final
    return result
