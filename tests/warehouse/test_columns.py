"""Columns: typing a whole column at once gives exactly what typing each value with fit() gives,
and gathering rows by shape puts every value in its column."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mainstem.warehouse.columns import Stamps, gather, typed
from mainstem.warehouse.types import MISFIT, TYPES, LogicalType, fit

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.sampled_from(
        [
            "2024-05-01T10:00:00.000Z",
            "2024-05-01T10:00:00+02:00",
            "2024-05-01",
            "0000-01-01T00:00:00Z",
            "a\x00b",
        ]
    ),
    st.lists(st.integers(), max_size=2),
)


def by_value(values: list[Any], type_: LogicalType, allow_nul: bool) -> tuple[list[Any], list[int]]:
    cells = [fit(value, type_, allow_nul) for value in values]
    misfits = [i for i, cell in enumerate(cells) if cell is MISFIT]
    return [None if cell is MISFIT else cell for cell in cells], misfits


@given(st.lists(VALUES, max_size=12), st.sampled_from(TYPES), st.booleans())
def test_a_column_is_typed_as_each_of_its_values_would_be(
    values: list[Any], type_: LogicalType, allow_nul: bool
) -> None:
    cells, misfits = typed(tuple(values), type_, Stamps(), allow_nul)
    expected_cells, expected_misfits = by_value(values, type_, allow_nul)
    assert list(cells) == expected_cells
    assert [type(c) for c in cells] == [type(c) for c in expected_cells]
    assert misfits == expected_misfits


def test_the_fast_paths_still_catch_what_does_not_fit() -> None:
    stamps = Stamps()
    assert typed((1, None, 1 << 63), "integer", stamps) == ([1, None, None], [2])
    assert typed(("a", "b\x00"), "varchar", stamps, allow_nul=False) == (["a", None], [1])
    assert typed(("a", "b\x00"), "varchar", stamps) == (("a", "b\x00"), [])
    assert typed(("2024-05-01T10:00:00.000Z", "soon", None), "timestamp", stamps) == (
        ["2024-05-01 10:00:00.000", None, None],
        [1],
    )
    assert typed((True, 1), "integer", stamps) == ([None, 1], [0])
    assert typed((1, 2.5), "float", stamps) == ([1.0, 2.5], [])


def test_rows_of_any_shape_are_gathered_into_their_columns() -> None:
    rows = [
        {"id": "a", "x": 1},
        {"x": 2, "id": "b"},
        {"id": "c", "extra": 5, "y": None},
        {"id": "d", "x": 3},
        {"id": "e"},
    ]
    gathered = gather(rows, ["id", "x"])
    assert gathered.cells == [("a", 1), ("b", 2), ("c", None), ("d", 3), ("e", None)]
    assert gathered.overflow == [(2, "extra", 5)]
    assert gather([{"id": "a"}], ["id"]).cells == [("a",)]
