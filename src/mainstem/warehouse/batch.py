"""One micro-batch, decided: stored messages → typed columns per table, discards, users/accounts
patches. Pure, no I/O; the loader asks the warehouse for the catalog and the ids it already has,
and hands the answers in.

Two guards make a load exactly-once: the loader's position commits with the rows (see
``loader.py``), and rows whose ``id`` the table already has in the batch's ``received_at`` window
are skipped here — a reloaded event has the same id *and* the same ``received_at``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from mainstem.warehouse import naming
from mainstem.warehouse.columns import Stamps, gather, typed
from mainstem.warehouse.flatten import Lost
from mainstem.warehouse.rows import LOAD_TIME_COLUMNS, SYSTEM_COLUMNS, UPSERTED, Kind, Row, rows
from mainstem.warehouse.schema import Plan
from mainstem.warehouse.types import MISFIT, LogicalType, fit, infer, timestamp

TableKey = tuple[str, str]
_encode = msgspec.json.Encoder().encode
_TIMESTAMP: Final[LogicalType] = "timestamp"
_LOAD_TIME_TYPES: Final = (_TIMESTAMP,) * len(LOAD_TIME_COLUMNS)


@dataclass(slots=True)
class TableRows:
    kind: Kind
    rows: list[Row] = field(default_factory=list)
    types: dict[str, LogicalType] = field(default_factory=dict)
    """Column → the type of its first non-null value in the batch, in first-seen order (see
    :func:`mainstem.warehouse.types.infer`); the kind's system columns start with their own
    type, so the planner and the typing know which columns the rows use without another pass."""
    window: tuple[str, str] | None = None
    """(lowest, highest) ``received_at`` of the rows, for the duplicate check."""

    def add(self, row: Row, stamp: str | None) -> None:
        self.rows.append(row)
        values = row.values
        types = self.types
        # Most rows of a table have the columns earlier rows had: one C-level subset test
        # instead of a look at every value.
        if not values.keys() <= types.keys():
            for name, value in values.items():
                if value is not None and name not in types:
                    types[name] = infer(value)
        if stamp is not None:
            window = self.window
            if window is None:
                self.window = (stamp, stamp)
            elif stamp < window[0]:
                self.window = (stamp, window[1])
            elif stamp > window[1]:
                self.window = (window[0], stamp)


@dataclass(slots=True)
class Collected:
    tables: dict[TableKey, TableRows] = field(default_factory=dict)
    messages: int = 0
    unloadable: list[tuple[str, str, Any]] = field(default_factory=list)
    """(schema, reason, message) for messages that make no rows at all."""
    stamps: Stamps = field(default_factory=Stamps)

    def inferred(self) -> dict[TableKey, tuple[Kind, dict[str, LogicalType]]]:
        """What :func:`mainstem.warehouse.schema.plan` needs: each table's kind and the types
        of its columns' first non-null values."""
        return {key: (t.kind, t.types) for key, t in self.tables.items()}

    def windows(self) -> dict[TableKey, tuple[str, str]]:
        """(lowest, highest) ``received_at`` of each table's rows, for the duplicate check."""
        return {key: t.window for key, t in self.tables.items() if t.window is not None}


def collect(
    messages: Iterable[tuple[str, Mapping[str, Any]]],
    make: Callable[[Mapping[str, Any]], list[Row]] = rows,
) -> Collected:
    """Group the rows of ``(source_id, message)`` pairs by (schema, table), in load order.
    ``make`` gives a message's rows: :func:`~mainstem.warehouse.rows.rows`, or
    :func:`~mainstem.warehouse.rows.patches` for the ``users``/``accounts`` patches alone."""
    result = Collected()
    tables = result.tables
    stamps = result.stamps
    schemas: dict[str, str] = {}
    for source_id, msg in messages:
        result.messages += 1
        schema = schemas.get(source_id)
        if schema is None:
            schema = schemas[source_id] = naming.schema(source_id)
        try:
            made = make(msg)
        except (ValueError, TypeError, AttributeError) as exc:
            result.unloadable.append((schema, str(exc), msg))
            continue
        received = msg.get("receivedAt")
        stamp = stamps(received) if type(received) is str else None
        if stamp is MISFIT:
            stamp = None
        for row in made:
            key = (schema, row.table)
            table = tables.get(key)
            if table is None:
                table = tables[key] = TableRows(row.kind, types=dict(SYSTEM_COLUMNS[row.kind]))
            table.add(row, stamp)
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
    """Typed values ready for the engine's bulk path, one sequence per column."""

    schema: str
    table: str
    columns: list[str]
    data: list[Sequence[Any]]
    """One sequence per column, all of the same length."""
    types: list[LogicalType]
    """The logical type of each column; timestamps are ``YYYY-MM-DD HH:MM:SS.ffffff`` text."""
    upsert: bool = False

    def __len__(self) -> int:
        return len(self.data[0]) if self.data else 0


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
    fresh: Mapping[str, set[str]] | None = None,
) -> Prepared:
    """Typed rows for every table of the batch.

    Args:
        collected: the batch, from :func:`collect`.
        plan: the columns each table has once the plan's DDL has run.
        existing: ids each table already holds in the batch's ``received_at`` window.
        loaded_at: the load time, for ``uuid_ts`` and ``loaded_at``.
        allow_nul: whether the engine's text can hold U+0000 (PostgreSQL's cannot).
        fresh: ``schema.identifies``/``schema.groups`` → ids of those loaded now by another
            path (the columnar one); only they and this batch's own may patch users/accounts.
    """
    result = Prepared()
    stamps = collected.stamps
    loaded: dict[str, set[str]] = {key: set(ids) for key, ids in (fresh or {}).items()}
    """schema.kind → ids of identifies/groups loaded now: only they may patch users/accounts."""
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
            loaded.setdefault(f"{schema}.{table.kind}", set()).update(
                str(row.values.get("id")) for row in kept
            )
        if kept:
            result.loads.append(
                _typed(schema, table, name, kept, plan, result, loaded_at, allow_nul, stamps)
            )
            result.rows += len(kept)
    for key, table in collected.tables.items():
        if table.kind not in UPSERTED:
            continue
        schema, name = key
        source = "identifies" if table.kind == "users" else "groups"
        allowed = loaded.get(f"{schema}.{source}", set())
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


def _stamp(value: Any) -> Any:
    return timestamp(value) if isinstance(value, str) else None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _typed(
    schema: str,
    table: TableRows,
    name: str,
    kept: list[Row],
    plan: Plan,
    result: Prepared,
    loaded_at: str,
    allow_nul: bool,
    stamps: Stamps,
) -> TableLoad:
    types = plan.columns[schema, name]
    present = table.types
    names = [c for c in types if c in present and c not in LOAD_TIME_COLUMNS]
    gathered = gather([row.values for row in kept], names)
    discards = result.discards
    for r, column, value in gathered.overflow:
        discard(discards, schema, name, kept[r].values, column, "too_many_columns", value)
    for row in kept:
        for lost in row.lost:
            _lost(discards, schema, name, row.values, lost)
    data: list[Sequence[Any]] = []
    for column, values in zip(names, zip(*gathered.cells, strict=True), strict=True):
        type_ = types[column]
        cells, misfits = typed(values, type_, stamps, allow_nul)
        for r in misfits:
            discard(discards, schema, name, kept[r].values, column, f"not_{type_}", values[r])
        data.append(cells)
    stamped = (loaded_at,) * len(kept)
    return TableLoad(
        schema,
        name,
        [*names, *LOAD_TIME_COLUMNS],
        [*data, *(stamped for _ in LOAD_TIME_COLUMNS)],
        [*(types[c] for c in names), *_LOAD_TIME_TYPES],
    )


def discard(
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
    discard(discards, schema, table, values, lost.column, lost.reason, lost.value, lost.path)


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
                    discard(result.discards, schema, table, values, name, "too_many_columns", value)
                continue
            cell = fit(value, types[name], allow_nul)
            if cell is MISFIT:
                discard(result.discards, schema, table, values, name, f"not_{types[name]}", value)
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
        TableLoad(
            schema,
            table,
            [*columns, *LOAD_TIME_COLUMNS],
            list(zip(*group_rows, strict=True)),
            [*(types[c] for c in columns), *_LOAD_TIME_TYPES],
            upsert=True,
        )
        for columns, group_rows in groups.items()
    ]
