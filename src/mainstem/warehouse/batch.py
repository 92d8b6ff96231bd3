"""One micro-batch, decided: stored messages → typed rows per table, discards, users/accounts
patches. Pure, no I/O; the loader asks the warehouse for the catalog and the ids it already has,
and hands the answers in.

Two guards make a load exactly-once: the loader's position commits with the rows (see
``loader.py``), and rows whose ``id`` the table already has in the batch's ``received_at`` window
are skipped here — a reloaded event has the same id *and* the same ``received_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from mainstem.warehouse import naming
from mainstem.warehouse.flatten import Lost
from mainstem.warehouse.rows import LOAD_TIME_COLUMNS, UPSERTED, Kind, Row, rows
from mainstem.warehouse.schema import Plan
from mainstem.warehouse.types import MISFIT, fit, timestamp

TableKey = tuple[str, str]
_INT64 = 1 << 63
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class TableRows:
    kind: Kind
    rows: list[Row] = field(default_factory=list)


@dataclass(slots=True)
class Collected:
    tables: dict[TableKey, TableRows] = field(default_factory=dict)
    messages: int = 0
    unloadable: list[tuple[str, str, Any]] = field(default_factory=list)
    """(schema, reason, message) for messages that make no rows at all."""

    def values(self) -> dict[TableKey, tuple[Kind, list[dict[str, Any]]]]:
        return {key: (t.kind, [row.values for row in t.rows]) for key, t in self.tables.items()}

    def windows(self) -> dict[TableKey, tuple[str, str]]:
        """(lowest, highest) ``received_at`` of each table's rows, for the duplicate check."""
        found: dict[TableKey, tuple[str, str]] = {}
        for key, table in self.tables.items():
            stamps = [
                s
                for row in table.rows
                if isinstance(s := _stamp(row.values.get("received_at")), str)
            ]
            if stamps:
                found[key] = (min(stamps), max(stamps))
        return found


def _stamp(value: Any) -> Any:
    return timestamp(value) if isinstance(value, str) else None


def collect(messages: Iterable[tuple[str, Mapping[str, Any]]]) -> Collected:
    """Group the rows of ``(source_id, message)`` pairs by (schema, table), in load order."""
    result = Collected()
    tables = result.tables
    for source_id, msg in messages:
        result.messages += 1
        schema = naming.schema(source_id)
        try:
            made = rows(msg)
        except (ValueError, TypeError, AttributeError) as exc:
            result.unloadable.append((schema, str(exc), msg))
            continue
        for row in made:
            key = (schema, row.table)
            table = tables.get(key)
            if table is None:
                table = tables[key] = TableRows(row.kind)
            table.rows.append(row)
    return result


@dataclass(frozen=True, slots=True)
class Discard:
    """A value kept out of its column; stored in ``_mainstem.discards``."""

    schema: str
    table: str
    column: str
    message_id: str | None
    received_at: str | None
    reason: str
    value: str
    """The value as JSON text."""
    path: str = ""


@dataclass(slots=True)
class TableLoad:
    """Rows ready for the engine's bulk path: ``rows`` are tuples in ``columns`` order."""

    schema: str
    table: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    upsert: bool = False


@dataclass(slots=True)
class Prepared:
    loads: list[TableLoad] = field(default_factory=list)
    discards: list[Discard] = field(default_factory=list)
    duplicates: int = 0
    rows: int = 0


def prepare(
    collected: Collected,
    plan: Plan,
    existing: Mapping[TableKey, set[str]],
    loaded_at: str,
    allow_nul: bool = True,
) -> Prepared:
    """Typed rows for every table of the batch.

    Args:
        collected: the batch, from :func:`collect`.
        plan: the columns each table has once the plan's DDL has run.
        existing: ids each table already holds in the batch's ``received_at`` window.
        loaded_at: the load time, for ``uuid_ts`` and ``loaded_at``.
        allow_nul: whether the engine's text can hold U+0000 (PostgreSQL's cannot).
    """
    result = Prepared()
    fresh: dict[str, set[str]] = {}
    """schema → ids of identifies/groups loaded now: only they may patch users/accounts."""
    for key, table in collected.tables.items():
        if table.kind in UPSERTED:
            continue
        schema, name = key
        seen: set[Any] = set(existing.get(key, ()))
        kept: list[Row] = []
        for row in table.rows:
            message_id = row.values.get("id")
            if message_id in seen:
                result.duplicates += 1
                continue
            seen.add(message_id)
            kept.append(row)
        if table.kind in ("identifies", "groups"):
            fresh.setdefault(f"{schema}.{table.kind}", set()).update(
                str(row.values.get("id")) for row in kept
            )
        if kept:
            result.loads.append(
                _typed(schema, name, kept, plan, result.discards, loaded_at, allow_nul)
            )
            result.rows += len(kept)
    for key, table in collected.tables.items():
        if table.kind not in UPSERTED:
            continue
        schema, name = key
        source = "identifies" if table.kind == "users" else "groups"
        allowed = fresh.get(f"{schema}.{source}", set())
        result.loads.extend(
            _patches(schema, name, table.rows, allowed, plan, result, loaded_at, allow_nul)
        )
    for schema, reason, msg in collected.unloadable:
        result.discards.append(
            Discard(
                schema,
                "",
                "",
                _str_or_none(msg.get("messageId")),
                _stamp(msg.get("receivedAt")),
                "unloadable",
                _encode(msg).decode(),
                reason,
            )
        )
    return result


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _typed(
    schema: str,
    table: str,
    kept: list[Row],
    plan: Plan,
    discards: list[Discard],
    loaded_at: str,
    allow_nul: bool,
) -> TableLoad:
    types = plan.columns[schema, table]
    present: dict[str, None] = {}
    for row in kept:
        present.update(dict.fromkeys(row.values))
    columns = [c for c in types if c in present and c not in LOAD_TIME_COLUMNS]
    index = {c: i for i, c in enumerate(columns)}
    width = len(columns)
    out: list[tuple[Any, ...]] = []
    for row in kept:
        cells: list[Any] = [None] * width
        values = row.values
        for name, value in values.items():
            if value is None:
                continue
            i = index.get(name)
            if i is None:
                _discard(discards, schema, table, values, name, "too_many_columns", value)
                continue
            type_ = types[name]
            kind = type(value)
            # Fast paths for the common exact matches; everything else goes through fit().
            if kind is str and type_ == "varchar" and (allow_nul or "\x00" not in value):
                cells[i] = value
                continue
            if (kind is int and type_ == "integer" and -_INT64 <= value < _INT64) or (
                kind is float and type_ == "float"
            ):
                cells[i] = value
                continue
            cell = fit(value, type_, allow_nul)
            if cell is MISFIT:
                _discard(discards, schema, table, values, name, f"not_{type_}", value)
                continue
            cells[i] = cell
        for lost in row.lost:
            _lost(discards, schema, table, values, lost)
        cells.append(loaded_at)
        cells.append(loaded_at)
        out.append(tuple(cells))
    return TableLoad(schema, table, [*columns, *LOAD_TIME_COLUMNS], out)


def _discard(
    discards: list[Discard],
    schema: str,
    table: str,
    values: Mapping[str, Any],
    column: str,
    reason: str,
    value: Any,
    path: str = "",
) -> None:
    discards.append(
        Discard(
            schema,
            table,
            column,
            _str_or_none(values.get("id")),
            _stamp(values.get("received_at")),
            reason,
            _encode(value).decode(),
            path,
        )
    )


def _lost(
    discards: list[Discard], schema: str, table: str, values: Mapping[str, Any], lost: Lost
) -> None:
    _discard(discards, schema, table, values, lost.column, lost.reason, lost.value, lost.path)


def _patches(
    schema: str,
    table: str,
    patches: list[Row],
    allowed: set[str],
    plan: Plan,
    result: Prepared,
    loaded_at: str,
    allow_nul: bool,
) -> list[TableLoad]:
    """users/accounts: merge the patches of each id in load order (a key present in a later
    message wins, explicit null included; missing keys keep their value — reference §7.5), then
    one upsert per distinct set of columns."""
    types = plan.columns[schema, table]
    merged: dict[str, dict[str, Any]] = {}
    for row in patches:
        if row.message_id not in allowed:
            continue
        values = row.values
        key = values.get("id")
        if not isinstance(key, str):
            continue
        target = merged.setdefault(key, {})
        for name, value in values.items():
            if name not in types:
                if value is not None:
                    _discard(
                        result.discards, schema, table, values, name, "too_many_columns", value
                    )
                continue
            cell = fit(value, types[name], allow_nul)
            if cell is MISFIT:
                _discard(result.discards, schema, table, values, name, f"not_{types[name]}", value)
                continue
            target[name] = cell
        for lost in row.lost:
            _lost(result.discards, schema, table, values, lost)
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for target in merged.values():
        columns = tuple(c for c in types if c in target)
        groups.setdefault(columns, []).append((*(target[c] for c in columns), loaded_at, loaded_at))
    result.rows += len(merged)
    return [
        TableLoad(schema, table, [*columns, *LOAD_TIME_COLUMNS], group_rows, upsert=True)
        for columns, group_rows in groups.items()
    ]
