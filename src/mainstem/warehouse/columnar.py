"""A micro-batch decided column by column in Arrow: the loader's fast path. Pure, no I/O.

The rules are those of ``rows.py``, ``columns.py`` and ``types.py``; this module makes no new
ones. It parses the stored JSON of a whole batch with Arrow's reader (C++), flattens
``context``, ``properties`` and ``traits`` once per *field* instead of once per value, names each
field once, and types whole columns with Arrow compute. Python touches a value only where a rule
needs it (a timestamp not in the gateway's form, a value that does not fit its column, an array,
the first value of a new column).

It takes only what it can give exactly as the per-message path (``batch.py``) would, and hands
the rest back; ``tests/warehouse/test_columnar.py`` compares the two on random batches.

- **New columns**: their types and order come from the per-message rules, run on just the
  messages that hold each one's first value (:meth:`Columnar._first_values`).
- **Per message**: the ``users``/``accounts`` patches of the batch's identifies and groups when
  any of them holds ``null`` or lacks ``receivedAt`` — a patch tells an explicit ``null`` (clear
  the trait) from a missing key (keep it), which Arrow does not. Otherwise they merge by column
  (:func:`_merge`).
- **Declined, whole batch** (:func:`parse` returns ``None``): JSON the reader cannot make one
  table of (a field that is a number in one message and text in another), a message type it
  does not know, a message id that is missing, not text or repeated, a track whose event is not
  text, a flattened name that is empty or taken twice in a table, U+0000 where the engine
  refuses it.
- **Declined once the catalog is known** (:meth:`Columnar.fits` is false): a value whose text
  Arrow does not keep (``1`` and ``1.0`` are the same double: one cannot go to a text column);
  and (``loader.Split.plan``) a table past ``MAX_COLUMNS``.

The loader then loads the whole batch the per-message way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import pyarrow as pa
import pyarrow.compute
import pyarrow.json

from mainstem.storage import EventRow
from mainstem.warehouse import naming
from mainstem.warehouse.batch import Prepared, TableKey, TableLoad, discard
from mainstem.warehouse.columns import Stamps
from mainstem.warehouse.flatten import join
from mainstem.warehouse.rows import LOAD_TIME_COLUMNS, SYSTEM_COLUMNS, UPSERTED, Kind, rename
from mainstem.warehouse.rows import rows as message_rows
from mainstem.warehouse.schema import Catalog, Plan
from mainstem.warehouse.types import MISFIT, LogicalType, infer

COLUMNAR_KINDS: Final = frozenset({"track", "page", "screen", "alias", "identify", "group"})
"""Message types this path loads (a batch with any other goes the per-message way)."""
PATCHING_KINDS: Final = frozenset({"identify", "group"})
"""Message types whose ``users``/``accounts`` patches are decided per message."""
_PATCHING: Final = pa.array(sorted(PATCHING_KINDS), pa.string())

pc: Any = pyarrow.compute
pj: Any = pyarrow.json
"""Untyped: the stubs' overloads are narrower than what the functions take (a ``BufferReader``,
an array of any type)."""
Values = Any
"""A ``pyarrow.Array``; the stubs make it generic in its scalar type, which varies here."""
_encode = msgspec.json.Encoder().encode
_CANONICAL: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
"""The gateway's timestamp form (``types._CANONICAL``), converted by slicing."""
_CANONICAL_PARTS: Final = r"^(.{10})T(.{12})Z$"
ARROW_TYPES: Final[dict[LogicalType, Any]] = {
    "timestamp": pa.string(),  # the engines' timestamp text; each casts it with its own parser
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "varchar": pa.string(),
}
"""The Arrow type a column of each logical type travels to the engines as."""


def arrow_table(types: Sequence[LogicalType], data: Sequence[Sequence[Any]]) -> Any:
    """Columns of these logical types — the columnar path's Arrow arrays as they are, Python
    sequences converted in C — as one Arrow table with columns ``c0``, ``c1``, …, for the
    engines' bulk paths."""
    arrays = []
    for values, logical in zip(data, types, strict=True):
        type_ = ARROW_TYPES[logical]
        if not isinstance(values, pa.Array):
            values = pa.array(values, type=type_)
        elif values.type != type_:
            values = values.cast(type_)
        arrays.append(values)
    return pa.table(arrays, names=[f"c{i}" for i in range(len(arrays))])


_COMMON: Final = (
    ("id", "messageId"),
    ("anonymous_id", "anonymousId"),
    ("user_id", "userId"),
    ("received_at", "receivedAt"),
    ("sent_at", "sentAt"),
    ("timestamp", "timestamp"),
    ("original_timestamp", "originalTimestamp"),
)
"""System columns every event table has, and the message field each comes from."""
_TABLE_KIND: Final[dict[str, Kind]] = {
    "page": "pages",
    "screen": "screens",
    "alias": "aliases",
    "identify": "identifies",
    "group": "groups",
}
_MESSAGE_TYPE: Final[dict[Kind, str]] = {
    "identifies": "identify",
    "users": "identify",
    "groups": "group",
    "accounts": "group",
}
"""The message type each table of the per-message half comes from."""
_SKIPPED: Final = ("name", "category")
"""Properties a page or screen leaves out when they equal its own ``name``/``category``."""
_READ: Final = pj.ReadOptions(use_threads=False)
"""One thread: the reader runs beside the load of the batch before (``loader._Ahead``), and on
two cores a load took less time with the reader on one than with it on both."""
_INT64: Final = 2.0**63
_STAMP_COLUMNS: Final = ("received_at", "sent_at", "timestamp", "original_timestamp")
_STAMPED: Final[list[LogicalType]] = ["timestamp" for _ in LOAD_TIME_COLUMNS]


def _scalar_types(type_: pa.DataType) -> bool:
    """Whether the values of ``type_`` keep their JSON text in Arrow: text, whole numbers,
    booleans and nulls (a double does not: ``1`` and ``1.0`` are the same double)."""
    return bool(
        pa.types.is_string(type_)
        or pa.types.is_int64(type_)
        or pa.types.is_boolean(type_)
        or pa.types.is_null(type_)
    )


def _kept_list(type_: pa.DataType) -> bool:
    """An array whose JSON text :func:`msgspec.json.encode` gives back from its Python values."""
    return bool(pa.types.is_list(type_) and _scalar_types(type_.value_type))


def _without_timestamps(type_: pa.DataType) -> tuple[pa.DataType, bool]:
    """``type_`` with every inferred timestamp made text again, and whether there was one.
    Arrow's reader takes ``"2024-05-01"`` for a timestamp and would not give the text back."""
    if pa.types.is_timestamp(type_):
        return pa.string(), True
    if pa.types.is_struct(type_):
        fields, changed = [], False
        for f in type_:
            inner, was = _without_timestamps(f.type)
            fields.append(pa.field(f.name, inner))
            changed = changed or was
        return pa.struct(fields), changed
    if pa.types.is_list(type_):
        inner, changed = _without_timestamps(type_.value_type)
        return pa.list_(inner), changed
    return type_, False


def read(data: bytes) -> Any | None:
    """Newline-delimited JSON → one Arrow table with every string kept as text, or ``None``
    when the messages do not make one table."""
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=_READ)
        fields, changed = [], False
        for f in table.schema:
            type_, was = _without_timestamps(f.type)
            fields.append(pa.field(f.name, type_))
            changed = changed or was
        if changed:
            options = pj.ParseOptions(
                explicit_schema=pa.schema(fields), unexpected_field_behavior="error"
            )
            table = pj.read_json(pa.BufferReader(data), read_options=_READ, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table.combine_chunks()


def _leaves(array: Values, prefix: str, out: dict[str, Values], taken: set[str]) -> bool:
    """Flatten a struct column as :func:`mainstem.warehouse.flatten.flatten` flattens its
    objects: ``flat name → values`` (a parent's null is every child's null). False when a name is
    empty or taken twice — the per-message path reports those values as lost. An object's own
    name counts as taken: where it is ``null`` it is a value of that name."""
    for f, child in zip(array.type, array.flatten(), strict=True):
        name = join(prefix, f.name)
        if not name or name in taken:
            return False
        taken.add(name)
        if pa.types.is_struct(f.type):
            if not _leaves(child, name, out, taken):
                return False
            continue
        out[name] = child
    return True


@dataclass(slots=True)
class _Table:
    kind: Kind
    rows: list[int] = field(default_factory=list)
    columns: dict[str, Values] = field(default_factory=dict)
    """Column → its values in this table's rows (a page's skipped properties already null)."""
    present: set[str] = field(default_factory=set)
    """The system columns, and the columns with a non-null value in the batch."""
    window: tuple[str, str] | None = None
    received: Values | None = None
    """``receivedAt`` as sent, for the discards."""
    messages: Values | None = None
    """The message ids of the rows (a users/accounts row: of its identify/group)."""
    inferred: dict[str, LogicalType] = field(default_factory=dict)
    """Column → type, once :meth:`Columnar.fits` has decided."""
    stamped: dict[str, tuple[Values, Values]] = field(default_factory=dict)
    """The text of the system timestamps as the engines load it, and where it is no timestamp
    (see :func:`_stamps`), for a column of type ``timestamp``."""


@dataclass(slots=True)
class Columnar:
    """The columnar half of a batch; ``rest`` is the per-message half."""

    tables: dict[TableKey, _Table]
    rest: list[EventRow]
    events: Sequence[EventRow] = ()
    first_rest: dict[tuple[str, str], int] = field(default_factory=dict)
    """(schema, message type) → the position of its first message, for the types whose
    patches go per message."""

    def order(self, per_message: Mapping[TableKey, Kind]) -> dict[TableKey, int]:
        """The position of the first message of every table of the batch — the per-message
        half's tables (of these kinds) included — so that the whole batch's DDL and inserts
        come in the order the per-message path gives them."""
        first = {key: table.rows[0] for key, table in self.tables.items()}
        for key, kind in per_message.items():
            first[key] = self.first_rest.get(
                (key[0], _MESSAGE_TYPE.get(kind, "")), len(self.events)
            )
        return first

    def fits(self, schemas: set[str], catalog: Catalog) -> bool:
        """Whether every value can load into the warehouse as the per-message path would load
        it. Where a schema, table or column is new, the types it gets are decided here, from the
        messages that hold its first values (see :meth:`_first_values`)."""
        for key, table in self.tables.items():
            columns = catalog.get(key, {}) if key[0] in schemas else {}
            wanted = [c for c in table.present if c not in LOAD_TIME_COLUMNS]
            if (
                all(c in columns for c in wanted)
                and SYSTEM_COLUMNS[table.kind].keys() <= columns.keys()
            ):
                table.inferred = {c: columns[c] for c in columns if c in table.present}
            else:
                inferred = self._first_values(key, table)
                if inferred is None:
                    return False
                table.inferred = inferred
            for column in wanted:
                type_ = columns.get(column) or table.inferred[column]
                if not _loads_as(table.columns[column], type_):
                    return False
        return True

    def _first_values(self, key: TableKey, table: _Table) -> dict[str, LogicalType] | None:
        """The types of the table's columns as :meth:`mainstem.warehouse.batch.TableRows.add`
        records them — each from its first non-null value, in the order they first appear —
        by decoding only the messages where a column has its first value."""
        types: dict[str, LogicalType] = dict(SYSTEM_COLUMNS[table.kind])
        firsts: set[int] = set()
        for column in table.present:
            if column not in types:
                valid = pc.indices_nonzero(pc.is_valid(table.columns[column]))
                firsts.add(valid[0].as_py())
        for r in sorted(firsts):
            message = msgspec.json.decode(self.events[table.rows[r]].body)
            for row in message_rows(message):
                if row.table != key[1] or row.kind != table.kind:
                    continue
                for name, value in row.values.items():
                    if value is not None and name not in types:
                        types[name] = infer(value)
        return types if types.keys() == table.present else None

    def inferred(self) -> dict[TableKey, tuple[Kind, dict[str, LogicalType]]]:
        """As :meth:`mainstem.warehouse.batch.Collected.inferred`, once :meth:`fits` said yes."""
        return {key: (t.kind, t.inferred) for key, t in self.tables.items()}

    def windows(self) -> dict[TableKey, tuple[str, str]]:
        return {key: t.window for key, t in self.tables.items() if t.window is not None}

    def prepare(
        self,
        plan: Plan,
        existing: Mapping[TableKey, set[str]],
        loaded_at: str,
        result: Prepared,
        stamps: Stamps,
    ) -> dict[str, set[str]]:
        """Add the typed columns and discards of every table to ``result``, as
        :func:`mainstem.warehouse.batch.prepare` does; returns the ids of the identifies and
        groups loaded (``schema.kind`` → ids), which alone may patch users and accounts."""
        fresh: dict[str, set[str]] = {}
        for key, table in self.tables.items():
            if table.kind in UPSERTED:
                continue
            schema, name = key
            types = plan.columns[key]
            names = [c for c in types if c in table.present and c not in LOAD_TIME_COLUMNS]
            ids = table.columns["id"]
            known = existing.get(key)
            keep = None
            if known:
                keep = pc.invert(pc.is_in(ids, value_set=pa.array(list(known), pa.string())))
                kept = pc.sum(keep).as_py() or 0
                result.duplicates += len(ids) - kept
                if kept == 0:
                    continue
            if table.kind in ("identifies", "groups"):
                loaded = ids if keep is None else ids.filter(keep)
                fresh.setdefault(f"{schema}.{table.kind}", set()).update(loaded.to_pylist())
            data = _columns(key, table, names, types, keep, stamps, result)
            count = len(data[0])
            result.loads.append(
                TableLoad(
                    schema,
                    name,
                    [*names, *LOAD_TIME_COLUMNS],
                    [*data, *_stamped_now(loaded_at, count)],
                    [*(types[c] for c in names), *_STAMPED],
                )
            )
            result.rows += count
        for key, table in self.tables.items():
            if table.kind in UPSERTED:
                _merge(key, table, plan.columns[key], fresh, loaded_at, stamps, result)
        return fresh


def _columns(
    key: TableKey,
    table: _Table,
    names: Sequence[str],
    types: Mapping[str, LogicalType],
    keep: Values | None,
    stamps: Stamps,
    result: Prepared,
) -> list[Values]:
    """The table's kept rows, typed column by column; misfits to the discards."""
    data: list[Values] = []
    for column in names:
        values = table.columns[column]
        if keep is not None:
            values = values.filter(keep)
        if types[column] == "timestamp" and column in table.stamped:
            cells, bad = table.stamped[column]
            if keep is not None:
                cells, bad = cells.filter(keep), bad.filter(keep)
            misfits = _misfits(values, bad)
        else:
            cells, misfits = _typed(values, types[column], stamps)
        if misfits:
            _report(result, key[0], key[1], column, types[column], table, keep, misfits)
        data.append(cells)
    return data


def _stamped_now(loaded_at: str, count: int) -> list[Values]:
    """The load-time columns of ``count`` rows."""
    return [pa.array([loaded_at] * count, pa.string())] * len(LOAD_TIME_COLUMNS)


def _merge(
    key: TableKey,
    table: _Table,
    types: Mapping[str, LogicalType],
    fresh: Mapping[str, set[str]],
    loaded_at: str,
    stamps: Stamps,
    result: Prepared,
) -> None:
    """``users``/``accounts`` as ``batch._patches`` makes them: only the patches of the
    identifies/groups loaded now, merged per id in load order (a later value wins; as no patch
    holds an explicit ``null`` here, a null is a missing key, which keeps the value), then one
    upsert per distinct set of columns."""
    schema, name = key
    source = "identifies" if table.kind == "users" else "groups"
    allowed = pa.array(sorted(fresh.get(f"{schema}.{source}", set())), pa.string())
    keep = pc.is_in(table.messages, value_set=allowed)
    names = [c for c in types if c in table.present and c not in LOAD_TIME_COLUMNS]
    data = _columns(key, table, names, types, keep, stamps, result)
    if not len(data[0]):
        return
    at = names.index("id")
    last = pc.ScalarAggregateOptions(skip_nulls=True)
    count = len(data[0])
    merged = (
        pa.table(
            [*data, pa.array(range(count), pa.int64())],
            names=[*(f"c{i}" for i in range(len(names))), "row"],
        )
        .group_by(f"c{at}", use_threads=False)
        .aggregate(
            [("row", "min"), *((f"c{i}", "last", last) for i in range(len(names)) if i != at)]
        )
        .sort_by("row_min")  # the ids in the order of their first patch
    )
    columns = [
        merged[f"c{i}" if i == at else f"c{i}_last"].combine_chunks() for i in range(len(names))
    ]
    shapes: dict[tuple[bool, ...], list[int]] = {}
    present = zip(*(pc.is_valid(column).to_pylist() for column in columns), strict=True)
    for r, shape in enumerate(present):
        shapes.setdefault(shape, []).append(r)
    for shape, rows in shapes.items():
        picks = [i for i, there in enumerate(shape) if there]
        take = pa.array(rows, pa.int64())
        cells: list[Values] = [columns[i].take(take) for i in picks]
        result.loads.append(
            TableLoad(
                schema,
                name,
                [*(names[i] for i in picks), *LOAD_TIME_COLUMNS],
                [*cells, *_stamped_now(loaded_at, len(rows))],
                [*(types[names[i]] for i in picks), *_STAMPED],
                upsert=True,
            )
        )
    result.rows += merged.num_rows


def _report(
    result: Prepared,
    schema: str,
    table: str,
    column: str,
    type_: LogicalType,
    rows: _Table,
    keep: Values | None,
    misfits: list[tuple[int, Any]],
) -> None:
    ids, received = rows.columns["id"], rows.received
    if keep is not None:
        ids = ids.filter(keep)
        received = received.filter(keep) if received is not None else None
    for r, value in misfits:
        values = {
            "id": ids[r].as_py(),
            "received_at": received[r].as_py() if received is not None else None,
        }
        discard(result.discards, schema, table, values, column, f"not_{type_}", value)


def _loads_as(values: Values, column: LogicalType) -> bool:
    """Whether :func:`_typed` gives exactly what :func:`mainstem.warehouse.columns.typed` would
    for these values in a column of this type."""
    type_ = values.type
    if _scalar_types(type_) or _kept_list(type_):
        return True
    if pa.types.is_float64(type_):
        if column == "float":
            return True
        if column == "integer":  # a whole double fits as an int, whichever JSON it was
            low, high = pc.min_max(values).values()
            return low.as_py() is None or (low.as_py() >= -_INT64 and high.as_py() < _INT64)
    return False


def _typed(
    values: Values, column: LogicalType, stamps: Stamps
) -> tuple[Values, list[tuple[int, Any]]]:
    """The values as the column's type, and (position, value) of those that do not fit (left
    null) — :func:`mainstem.warehouse.columns.typed` for a column at a time."""
    type_ = values.type
    target = ARROW_TYPES[column]
    if pa.types.is_null(type_) or values.null_count == len(values):
        return pa.nulls(len(values), target), []
    if column == "varchar":
        if pa.types.is_string(type_):
            return values, []
        if _kept_list(type_):
            return pa.array(
                [None if v is None else _encode(v).decode() for v in values.to_pylist()], target
            ), []
        return values.cast(target), []  # integers and booleans: their JSON text
    if column == "timestamp" and pa.types.is_string(type_):
        return _stamped(values, stamps)
    fits: Values | None = None
    if column == "integer" and pa.types.is_int64(type_):
        return values, []
    if column == "float" and (pa.types.is_float64(type_) or pa.types.is_int64(type_)):
        return pc.cast(values, target, safe=False), []
    if column == "boolean" and pa.types.is_boolean(type_):
        return values, []
    if column == "integer" and pa.types.is_float64(type_):
        fits = pc.equal(values, pc.floor(values))
    misfit = pc.is_valid(values) if fits is None else pc.and_(pc.is_valid(values), pc.invert(fits))
    positions = pc.indices_nonzero(misfit)
    bad = list(zip(positions.to_pylist(), values.take(positions).to_pylist(), strict=True))
    if fits is None:
        return pa.nulls(len(values), target), bad
    return pc.cast(pc.if_else(fits, values, None), target), bad


def _stamped(values: Values, stamps: Stamps) -> tuple[Values, list[tuple[int, Any]]]:
    """Text in a timestamp column as the engines load it, and (position, text) of what is no
    timestamp."""
    cells, misfit = _stamps(values, stamps)
    return cells, _misfits(values, misfit)


def _stamps(values: Values, stamps: Stamps) -> tuple[Values, Values]:
    """Text in a timestamp column: the gateway's form by slicing, anything else through
    :class:`~mainstem.warehouse.columns.Stamps` one value at a time; and where the value is no
    timestamp (its cell left null)."""
    canonical = pc.fill_null(pc.match_substring_regex(values, _CANONICAL), True)
    cells = pc.replace_substring_regex(values, _CANONICAL_PARTS, r"\1 \2")
    if pc.all(canonical).as_py():
        return cells, pa.nulls(len(values), pa.bool_())
    other = pc.invert(canonical)
    converted = [stamps(text) for text in values.filter(other).to_pylist()]
    misfit = pc.replace_with_mask(
        pa.nulls(len(values), pa.bool_()), other, pa.array([c is MISFIT for c in converted])
    )
    replacements = pa.array([None if c is MISFIT else c for c in converted], pa.string())
    return pc.replace_with_mask(cells, other, replacements), misfit


def _misfits(values: Values, misfit: Values) -> list[tuple[int, Any]]:
    """(position, value) where ``misfit`` is true."""
    positions = pc.indices_nonzero(pc.fill_null(misfit, False))
    return list(zip(positions.to_pylist(), values.take(positions).to_pylist(), strict=True))


def _column(table: Any, name: str) -> Values:
    if name in table.column_names:
        return table.column(name).chunk(0) if table.num_rows else pa.nulls(0)
    return pa.nulls(table.num_rows)


def parse(events: Sequence[EventRow], allow_nul: bool = True) -> Columnar | None:
    """Split a batch into its columnar and per-message halves, or ``None`` when this path
    declines it (see the module's text)."""
    data = b"\n".join(event.body for event in events)
    if not allow_nul and b"\\u0000" in data:
        return None
    table = read(data)
    if table is None or table.num_rows != len(events) or "type" not in table.column_names:
        return None
    kinds = _column(table, "type")
    if not pa.types.is_string(kinds.type) or not COLUMNAR_KINDS.issuperset(
        pc.unique(kinds).to_pylist()
    ):
        return None  # the per-message path reports a message it cannot load
    ids = _column(table, "messageId")
    if (
        not pa.types.is_string(ids.type)
        or ids.null_count
        or pc.count_distinct(ids).as_py() != len(ids)
    ):
        return None
    event_texts = _column(table, "event")
    tracks = pc.equal(kinds, "track")
    if pc.any(tracks).as_py() and (
        not pa.types.is_string(event_texts.type)
        or pc.any(pc.and_(tracks, pc.is_null(event_texts))).as_py()
    ):
        return None
    if not pa.types.is_string(event_texts.type):
        event_texts = pa.nulls(len(events), pa.string())
    groups, first_rest = _tables(events, kinds, event_texts)
    common = {column: _column(table, field_) for column, field_ in _COMMON}
    common["group_id"] = _column(table, "groupId")
    patching = pc.indices_nonzero(pc.is_in(kinds, _PATCHING)).to_pylist()
    rest = [events[i] for i in patching]
    if rest and _patches_in_columns(rest, patching, common):
        _add_patches(groups, common)
        rest, first_rest = [], {}
    context: dict[str, Values] = {}
    properties: dict[str, Values] = {}
    traits: dict[str, Values] = {}
    for field_, prefix, out in (
        ("context", "context", context),
        ("properties", "", properties),
        ("traits", "", traits),
    ):
        array = _column(table, field_)
        if pa.types.is_struct(array.type):
            if not _leaves(array, prefix, out, set()):
                return None
        elif not pa.types.is_null(array.type):
            return None  # not an object: the per-message path ignores it, but says nothing
    stamps = Stamps()
    stamped = {  # converted once for every table of the batch
        column: _stamps(common[column], stamps)
        for column in _STAMP_COLUMNS
        if pa.types.is_string(common[column].type)
    }
    received = stamped.get("received_at", (pa.nulls(table.num_rows, pa.string()), None))[0]
    common["event"] = _event_tables(event_texts)
    common["event_text"] = event_texts
    common["name"] = _column(table, "name")
    common["category"] = _column(table, "category")
    common["previous_id"] = _column(table, "previousId")
    for group in groups.values():
        columns = _sources(group.kind, common, context, properties, traits)
        if columns is None:
            return None
        take = pa.array(group.rows, pa.int64())
        system = SYSTEM_COLUMNS[group.kind]
        for column, values in columns.items():
            taken = values.take(take)
            group.columns[column] = taken
            if column in system or taken.null_count < len(taken):
                group.present.add(column)
        group.present.update(system)
        group.received = common["received_at"].take(take)
        group.messages = common["id"].take(take)
        group.stamped = {
            c: (cells.take(take), bad.take(take)) for c, (cells, bad) in stamped.items()
        }
        low, high = pc.min_max(received.take(take)).values()
        if low.as_py() is not None:
            group.window = (low.as_py(), high.as_py())
        if group.kind in ("pages", "screens") and not _skip_repeats(group, properties):
            return None
    return Columnar(groups, rest, events, first_rest)


def _tables(
    events: Sequence[EventRow], kinds: Values, event_texts: Values
) -> tuple[dict[TableKey, _Table], dict[tuple[str, str], int]]:
    """The tables of the batch with their rows, in the order of their first message (a track's
    ``tracks`` row before its event's), and where each (schema, identify/group) first comes."""
    sources = pa.array([event.source_id for event in events], pa.string())
    rows = pa.array(range(len(events)), pa.int64())
    keyed = pa.table({"s": sources, "k": kinds, "e": event_texts, "i": rows})
    combos: Any = keyed.group_by(["s", "k", "e"], use_threads=False).aggregate([("i", "list")])
    found = sorted(
        zip(
            combos["s"].to_pylist(),
            combos["k"].to_pylist(),
            combos["e"].to_pylist(),
            combos["i_list"].to_pylist(),
            strict=True,
        ),
        key=lambda combo: combo[3][0],
    )
    groups: dict[TableKey, _Table] = {}
    first_rest: dict[tuple[str, str], int] = {}
    for source, kind, event, indices in found:
        schema = naming.schema(source)
        if kind == "track":
            _group(groups, (schema, "tracks"), "tracks").rows.extend(indices)
            _group(groups, (schema, naming.event_table(event)), "event").rows.extend(indices)
            continue
        _group(groups, (schema, _TABLE_KIND[kind]), _TABLE_KIND[kind]).rows.extend(indices)
        if kind in PATCHING_KINDS:
            first_rest.setdefault((schema, kind), indices[0])
    for group in groups.values():
        group.rows.sort()
    return groups, first_rest


def _patches_in_columns(
    messages: Sequence[EventRow], rows: Sequence[int], common: Mapping[str, Values]
) -> bool:
    """Whether the users/accounts patches of these identify and group messages can be merged
    by column: a patch tells an explicit ``null`` (clear the trait) from a missing key (keep
    it), which Arrow's columns do not — so only where no message holds ``null`` anywhere (as
    text too: whatever the spacing of the JSON, a ``null`` value holds those bytes); and
    the user and group ids are text (others are skipped), every ``receivedAt`` is there."""
    return (
        not any(b"null" in message.body for message in messages)
        and all(
            pa.types.is_string(common[c].type) or pa.types.is_null(common[c].type)
            for c in ("user_id", "group_id")
        )
        and pa.types.is_string(common["received_at"].type)
        and common["received_at"].take(pa.array(rows, pa.int64())).null_count == 0
    )


def _add_patches(groups: dict[TableKey, _Table], common: Mapping[str, Values]) -> None:
    """The ``users`` rows of the identifies with a user id, the ``accounts`` rows of the groups
    with a group id, after their source table in the batch's order."""
    for (schema, _), group in list(groups.items()):
        if group.kind not in ("identifies", "groups"):
            continue
        kind: Kind = "users" if group.kind == "identifies" else "accounts"
        key = common["user_id" if kind == "users" else "group_id"]
        rows = [
            r
            for r, valid in zip(
                group.rows, pc.is_valid(key.take(group.rows)).to_pylist(), strict=True
            )
            if valid
        ]
        if rows:
            _group(groups, (schema, kind), kind).rows.extend(rows)


def _event_tables(event_texts: Values) -> Values:
    """Each track's event table name (``naming.event_table``), once per distinct event."""
    encoded = pc.dictionary_encode(event_texts)
    names = [None if e is None else naming.event_table(e) for e in encoded.dictionary.to_pylist()]
    return pa.DictionaryArray.from_arrays(encoded.indices, pa.array(names, pa.string())).cast(
        pa.string()
    )


def _group(groups: dict[TableKey, _Table], key: TableKey, kind: Kind) -> _Table:
    found = groups.get(key)
    if found is None:
        found = groups[key] = _Table(kind)
    return found


def _sources(
    kind: Kind,
    batch: Mapping[str, Values],
    context: Mapping[str, Values],
    properties: Mapping[str, Values],
    traits: Mapping[str, Values],
) -> dict[str, Values] | None:
    """Column → its values over the whole batch for a table of ``kind``, as ``rows.rows``
    names them; ``None`` when two land in one column."""
    if kind in UPSERTED:
        key = batch["user_id" if kind == "users" else "group_id"]
        columns = {"id": key, "received_at": batch["received_at"]}
    else:
        columns = {name: batch[name] for name in SYSTEM_COLUMNS[kind] if name in batch}
    for flat, values in {} if kind in UPSERTED else context.items():
        name = rename(None, flat)
        if name in columns:
            return None
        columns[name] = values
    own = properties if kind in ("event", "pages", "screens") else {}
    if kind in ("identifies", "groups", "users", "accounts"):
        own = traits
    for flat, values in own.items():
        name = rename(kind, flat)
        if name in columns:
            return None
        columns[name] = values
    return columns


def _skip_repeats(group: _Table, properties: Mapping[str, Values]) -> bool:
    """analytics.js mirrors a page's ``name`` and ``category`` into its properties: a property
    equal to the page's own value is left out (``rows._add_user_values``). False when the two
    differ in type, where Python's ``==`` has rules of its own (``1 == True``)."""
    for flat in _SKIPPED:
        if flat not in properties:
            continue
        column = rename(group.kind, flat)
        own, top = group.columns[column], group.columns[flat]
        if pa.types.is_null(top.type) or pa.types.is_null(own.type):
            continue
        if top.type != own.type or not _scalar_types(own.type):
            return False
        same = pc.fill_null(pc.equal(own, top), False)
        kept = pc.if_else(same, pa.nulls(len(own), own.type), own)
        group.columns[column] = kept
        if kept.null_count == len(kept):
            group.present.discard(column)
    return True
