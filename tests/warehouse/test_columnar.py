"""The columnar path gives exactly the rows, types and discards of the per-message path.

Random batches of stored messages are decided both ways against the same catalog (made from a
batch of the same kind, so values of another type meet columns that exist) and the same ids
already in the warehouse; whenever the columnar path takes a batch, the two must agree.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mainstem.storage import EventRow
from mainstem.warehouse import batch
from mainstem.warehouse.batch import Prepared
from mainstem.warehouse.loader import Split
from mainstem.warehouse.schema import plan

_KEYS = ["price", "name", "Name", "category", "id", "a.b", "a_b", "sku", "context_x", "when", "1x"]
_CONTEXT_KEYS = ["ip", "page", "userAgent", "user_agent"]
_STAMPS = [
    "2024-05-01T09:59:59.123Z",
    "2024-05-01T09:59:59Z",
    "2024-05-01",
    "2024-05-01 10:00:00",
    "2024-05-01T09:59:59+02:00",
    "9999-12-31T23:59:59.999Z",
    "0000-01-01T00:00:00.000Z",
    "not a time",
]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 64), max_value=1 << 64),
    st.integers(min_value=-3, max_value=3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1.0, 2.5, -0.0, 1e20]),
    st.text(max_size=4),
    st.sampled_from(_STAMPS),
)
_KINDS_OF_VALUES = [
    *_scalars.original_strategies,  # type: ignore[attr-defined]
    st.lists(st.one_of(st.text(max_size=3), st.integers(-5, 5), st.booleans()), max_size=3),
    st.lists(st.text(max_size=2), max_size=2),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=2),
    st.dictionaries(st.sampled_from(["x", "y", "Y"]), _scalars, max_size=2),
]
_values = st.one_of(_KINDS_OF_VALUES)


@st.composite
def _objects(
    draw: st.DrawFn, kinds: dict[str, int] | None, names: list[str] = _KEYS
) -> dict[str, Any]:
    """An object; with ``kinds``, each key's values are of one kind (most real batches)."""
    keys = draw(st.lists(st.sampled_from(names), max_size=4, unique=True))
    return {key: draw(_values if kinds is None else _KINDS_OF_VALUES[kinds[key]]) for key in keys}


@st.composite
def _message(draw: st.DrawFn, i: int, kinds: dict[str, int] | None) -> dict[str, Any]:
    kind = draw(st.sampled_from(["track", "track", "page", "screen", "alias", "identify", "group"]))
    msg: dict[str, Any] = {
        "type": kind,
        "messageId": f"m{i}",
        "receivedAt": draw(st.sampled_from(_STAMPS[:2])),
        "timestamp": draw(st.sampled_from(_STAMPS)),
        "context": draw(_objects(kinds, _CONTEXT_KEYS)),
    }
    anonymous = draw(st.sampled_from(["a1", "a2", None, "missing"]))
    if anonymous != "missing":
        msg["anonymousId"] = anonymous
    if draw(st.booleans()):
        msg["userId"] = draw(st.sampled_from(["u1", "u2"]))
    if kind == "track":
        msg["event"] = draw(st.sampled_from(["Order Completed", "order_completed", "Viewed"]))
        msg["properties"] = draw(_objects(kinds))
    elif kind in ("page", "screen"):
        if draw(st.booleans()):
            msg["name"] = draw(st.sampled_from(["Home", "Cart"] if kinds else ["Home", 5]))
        msg["properties"] = draw(_objects(kinds))
    elif kind == "alias":
        msg["previousId"] = "p1"
    else:
        if kind == "group":
            msg["groupId"] = draw(st.sampled_from(["g1", "g2"]))
        msg["traits"] = draw(_objects(kinds))
    return msg


@st.composite
def _batch(draw: st.DrawFn, start: int) -> list[EventRow]:
    size = draw(st.integers(min_value=1, max_value=12))
    kinds = None
    if draw(st.booleans()):
        kinds = {
            key: draw(st.integers(0, len(_KINDS_OF_VALUES) - 1)) for key in _KEYS + _CONTEXT_KEYS
        }
    encode = msgspec.json.Encoder().encode
    return [
        EventRow(start + i, draw(st.sampled_from(["web", "ios"])), 0, encode(draw(message)))
        for i, message in ((i, _message(i, kinds)) for i in range(start, start + size))
    ]


def _per_message(events: list[EventRow]) -> batch.Collected:
    return batch.collect((e.source_id, msgspec.json.decode(e.body)) for e in events)


def _plain(prepared: Prepared) -> tuple[Any, ...]:
    loads = {
        (load.schema, load.table, load.upsert, tuple(load.columns)): (
            list(load.types),
            [v.to_pylist() if isinstance(v, pa.Array) else list(v) for v in load.data],
        )
        for load in prepared.loads
    }
    discards: dict[tuple[str, str], list[batch.Discard]] = defaultdict(list)
    for d in prepared.discards:
        discards[d.schema, d.table].append(d)
    for key in discards:  # the order of a table's discards is no contract
        discards[key].sort(key=repr)
    return loads, dict(discards), prepared.rows, prepared.duplicates


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    first=_batch(0),
    second=_batch(100),
    warehouse=st.sampled_from(["empty", "first batch", "both batches"]),
    allow_nul=st.booleans(),
    known=st.sets(st.integers(min_value=100, max_value=111)),
)
def test_the_columnar_path_decides_as_the_per_message_path(
    first: list[EventRow],
    second: list[EventRow],
    warehouse: str,
    allow_nul: bool,
    known: set[int],
) -> None:
    """The warehouse holds nothing yet, the tables of a first batch, or every column of both
    batches (so values of another type meet columns that exist); the second batch is decided
    both ways against it."""
    loaded = {"empty": [], "first batch": first, "both batches": first + second}[warehouse]
    before = plan(set(), {}, _per_message(loaded).inferred())
    catalog, schemas = before.columns, {schema for schema, _ in before.columns}
    split = Split.of(second, allow_nul)
    planned = split.plan(schemas, catalog)
    if split.fast is None:
        return
    expected_rows = _per_message(second)
    assert planned == plan(schemas, catalog, expected_rows.inferred())
    assert split.windows() == expected_rows.windows()
    existing = {key: {f"m{i}" for i in known} for key in planned.columns}
    expected = batch.prepare(expected_rows, planned, existing, "2024-06-01 00:00:00", allow_nul)
    got = split.prepare(planned, existing, "2024-06-01 00:00:00")
    assert _plain(got) == _plain(expected)
    assert [(load.schema, load.table) for load in got.loads] == [
        (load.schema, load.table) for load in expected.loads
    ]


_NON_NULL = [
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([2.5, 1.0, -0.0]),
    st.text(max_size=3),
    st.sampled_from(_STAMPS),
    st.lists(st.text(max_size=2), max_size=2),
]


@st.composite
def _patching(draw: st.DrawFn, start: int) -> list[EventRow]:
    """Identifies and groups without a ``null`` anywhere: their users/accounts patches are
    merged by column. Few ids, so that patches of one id meet; one kind of value per trait."""
    kinds = {key: draw(st.integers(0, len(_NON_NULL) - 1)) for key in ("plan", "seats", "tier")}
    encode = msgspec.json.Encoder().encode
    events = []
    for i in range(start, start + draw(st.integers(min_value=1, max_value=10))):
        kind = draw(st.sampled_from(["identify", "group"]))
        msg: dict[str, Any] = {
            "type": kind,
            "messageId": f"m{i}",
            "receivedAt": draw(st.sampled_from(_STAMPS[:2])),
            "traits": {
                key: draw(_NON_NULL[kinds[key]])
                for key in draw(st.lists(st.sampled_from(list(kinds)), max_size=3, unique=True))
            },
        }
        if draw(st.booleans()):
            msg["context"] = {"ip": "203.0.113.7", "page": {"path": "/"}}
        if kind == "group":
            msg["groupId"] = draw(st.sampled_from(["g1", "g2"]))
        elif draw(st.booleans()):
            msg["userId"] = draw(st.sampled_from(["u1", "u2", "u3"]))
        events.append(EventRow(i, "web", 0, encode(msg)))
    return events


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    first=_patching(0),
    second=_patching(100),
    warehouse=st.sampled_from(["empty", "first batch"]),
    known=st.sets(st.integers(min_value=100, max_value=109)),
)
def test_users_and_accounts_merge_by_column_as_per_message(
    first: list[EventRow], second: list[EventRow], warehouse: str, known: set[int]
) -> None:
    loaded = first if warehouse == "first batch" else []
    before = plan(set(), {}, _per_message(loaded).inferred())
    catalog, schemas = before.columns, {schema for schema, _ in before.columns}
    split = Split.of(second, allow_nul=True)
    planned = split.plan(schemas, catalog)
    if warehouse == "empty":  # nothing to meet a column of another type
        assert split.fast is not None
    if split.fast is None:
        return
    assert not split.collected.tables  # the patches too went by column
    expected_rows = _per_message(second)
    assert planned == plan(schemas, catalog, expected_rows.inferred())
    existing = {key: {f"m{i}" for i in known} for key in planned.columns}
    expected = batch.prepare(expected_rows, planned, existing, "2024-06-01 00:00:00")
    got = split.prepare(planned, existing, "2024-06-01 00:00:00")
    assert _plain(got) == _plain(expected)
    assert [(load.schema, load.table, load.upsert) for load in got.loads] == [
        (load.schema, load.table, load.upsert) for load in expected.loads
    ]


def test_a_steady_batch_takes_the_columnar_path() -> None:
    encode = msgspec.json.Encoder().encode
    events = [
        EventRow(
            i,
            "web",
            0,
            encode(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "messageId": f"m{i}",
                    "receivedAt": "2024-05-01T09:59:59.123Z",
                    "context": {"ip": "1.2.3.4", "page": {"path": "/"}},
                    "properties": {"price": 1.5, "tags": ["a"]},
                }
            ),
        )
        for i in range(3)
    ]
    collected = _per_message(events)
    split = Split.of(events, allow_nul=False)
    planned = split.plan(set(), {})
    assert planned == plan(set(), {}, collected.inferred())
    assert split.fast is not None and not split.collected.tables
    got = split.prepare(planned, {}, "2024-06-01 00:00:00")
    assert _plain(got) == _plain(batch.prepare(collected, planned, {}, "2024-06-01 00:00:00"))


def test_patches_go_per_message_where_a_null_or_a_missing_received_at_could_mean_a_clear() -> None:
    encode = msgspec.json.Encoder().encode

    def identify(i: int, **fields: Any) -> EventRow:
        msg = {"type": "identify", "messageId": f"m{i}", "userId": "u1", **fields}
        return EventRow(i, "web", 0, encode(msg))

    stamp = "2024-05-01T09:59:59.123Z"
    for events in (
        [identify(1, receivedAt=stamp, traits={"plan": "pro"}), identify(2, traits={})],
        [identify(1, receivedAt=stamp, traits={"plan": None})],
    ):
        split = Split.of(events, allow_nul=True)
        planned = split.plan(set(), {})
        assert split.fast is not None and ("web", "users") in split.collected.tables
        got = split.prepare(planned, {}, "2024-06-01 00:00:00")
        expected = batch.prepare(_per_message(events), planned, {}, "2024-06-01 00:00:00")
        assert _plain(got) == _plain(expected)
