"""A table's rows → one typed sequence per column, for the engines' bulk paths: pure, no I/O.

The rows of a batch mostly share their keys, and their values mostly have the type their column
already has. So the work is done per *shape* (a row's keys, in order) and per column rather than
per value: each shape gets an ``itemgetter`` that puts a row's values in column order, the rows
are transposed, and a column whose values all have the column's own Python type is kept as it is,
checked at C speed (``set(map(type, ...))``, ``min``/``max``, ``str.join``). Only a column that
holds something else (a number in a ``varchar`` column, a string in an ``integer`` one) is
converted value by value with :func:`~mainstem.warehouse.types.fit`; timestamps are converted
once per distinct text (:class:`Stamps`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import is_not, itemgetter
from typing import Any, Final

from mainstem.warehouse.types import MISFIT, LogicalType, fit, timestamp

_INT64: Final = 1 << 63
_EXACT: Final[dict[str, type]] = {"varchar": str, "integer": int, "float": float, "boolean": bool}
"""The Python type a value of a column of each logical type is stored as, unchanged (an int:
when it fits in 64 bits; a str in PostgreSQL: when it has no U+0000)."""
_NONE: Final = type(None)
_not_none: Final = partial(is_not, None)


class Stamps:
    """ISO-8601 text → the engines' timestamp text (or :data:`MISFIT`), converted once per
    distinct value in a batch: a message's timestamps repeat across its rows and often across
    messages. Holds ``None → None`` so that a column can be mapped through it whole."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[Any, Any] = {None: None}

    def __call__(self, value: str) -> Any:
        known = self._known
        if value not in known:
            known[value] = timestamp(value)
        return known[value]

    def column(self, values: Sequence[Any]) -> tuple[list[Any], bool]:
        """Each of ``values`` (``str`` or ``None``) converted, and whether any does not fit."""
        known = self._known
        distinct = set(values)
        for value in distinct.difference(known):
            known[value] = timestamp(value)
        misfit = MISFIT in map(known.__getitem__, distinct)  # `in` tries identity first
        return list(map(known.__getitem__, values)), misfit


Getter = Callable[[tuple[Any, ...]], tuple[Any, ...]]


@dataclass(slots=True)
class Gathered:
    """Rows in column order. ``overflow`` has (row, key, value) for the non-null values whose key
    is not one of the columns (the table is full: ``too_many_columns``)."""

    cells: list[tuple[Any, ...]] = field(default_factory=list)
    overflow: list[tuple[int, str, Any]] = field(default_factory=list)


def _getter(shape: tuple[str, ...], names: Mapping[str, int]) -> tuple[Getter, tuple[int, ...]]:
    """For rows with these keys: the getter of their values in column order (from the values
    with a ``None`` appended, for the columns the shape lacks), and the positions of the keys that
    have no column."""
    where = {name: i for i, name in enumerate(shape)}
    missing = len(shape)
    picks = [where.get(name, missing) for name in names]
    outside = tuple(i for i, name in enumerate(shape) if name not in names)
    if len(picks) == 1:
        only = picks[0]
        return (lambda values: (values[only],)), outside
    return itemgetter(*picks), outside


def gather(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Gathered:
    """``rows`` (column → value) as tuples in the order of ``names``; missing columns are
    ``None``."""
    index = {name: i for i, name in enumerate(names)}
    getters: dict[tuple[str, ...], tuple[Getter, tuple[int, ...]]] = {}
    out = Gathered()
    cells = out.cells
    for r, row in enumerate(rows):
        shape = tuple(row)
        found = getters.get(shape)
        if found is None:
            found = getters[shape] = _getter(shape, index)
        getter, outside = found
        values = (*row.values(), None)
        cells.append(getter(values))
        for i in outside:
            if values[i] is not None:
                out.overflow.append((r, shape[i], values[i]))
    return out


def typed(
    values: Sequence[Any], type_: LogicalType, stamps: Stamps, allow_nul: bool = True
) -> tuple[Sequence[Any], list[int]]:
    """A column's values converted to ``type_``, and the positions of those that do not fit
    (left ``None`` in the result): the rules of :func:`~mainstem.warehouse.types.fit`."""
    kinds = set(map(type, values))
    kinds.discard(_NONE)
    if not kinds:
        return values, []
    exact = _EXACT.get(type_)
    if type_ == "timestamp" and kinds == {str}:
        converted, misfit = stamps.column(values)
        return _misfits(converted) if misfit else (converted, [])
    if exact is not None and kinds == {exact}:
        if exact is int:
            present = list(filter(_not_none, values))
            if min(present) >= -_INT64 and max(present) < _INT64:
                return values, []
        elif exact is not str or allow_nul or "\x00" not in "".join(filter(_not_none, values)):
            return values, []
    return _misfits(
        [
            None
            if value is None
            else stamps(value)
            if type_ == "timestamp" and type(value) is str
            else fit(value, type_, allow_nul)
            for value in values
        ]
    )


def _misfits(converted: list[Any]) -> tuple[list[Any], list[int]]:
    bad = [i for i, cell in enumerate(converted) if cell is MISFIT]
    for i in bad:
        converted[i] = None
    return converted, bad
