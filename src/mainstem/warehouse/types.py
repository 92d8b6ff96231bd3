"""Column types: inference from the first value and whether later values fit (reference §7.6).

Pure, no I/O. Five logical types, as Segment's warehouses have: ``timestamp``, ``integer``,
``float``, ``boolean``, ``varchar``. A column's type is fixed by the first non-null value that
creates it and is never widened by the loader; :func:`fit` converts a value losslessly to the
column's type or returns :data:`MISFIT`, and the loader sends misfits to the discards table.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import msgspec

from mainstem import timestamps

LogicalType = Literal["timestamp", "integer", "float", "boolean", "varchar"]
TYPES: Final[tuple[LogicalType, ...]] = ("timestamp", "integer", "float", "boolean", "varchar")

MISFIT: Final = object()
"""Returned by :func:`fit` for a value that cannot be stored in the column without loss."""

_INT64 = (-(1 << 63), (1 << 63) - 1)
# Only full date-times infer `timestamp` (the reference's recommendation, §7.6): a date alone,
# a time alone or a number stays what it is.
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}(:?\d{2})?)?$"
)
_CANONICAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_encode = msgspec.json.Encoder().encode


def infer(value: Any) -> LogicalType:
    """The type a new column gets from its first non-null value."""
    kind = type(value)
    if kind is bool:
        return "boolean"
    if kind is int:
        return "integer" if _INT64[0] <= value <= _INT64[1] else "float"
    if kind is float:
        return "float"
    if kind is str and _ISO.match(value) and timestamp(value) is not MISFIT:
        return "timestamp"
    return "varchar"


def timestamp(value: str) -> Any:
    """An ISO-8601 string as the UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` text every engine loads,
    or :data:`MISFIT`."""
    if len(value) == 24 and _CANONICAL.match(value):  # the gateway's form: no parsing
        return f"{value[:10]} {value[11:23]}"
    if not _ISO.match(value):
        return MISFIT
    micros = timestamps.parse(value)
    if micros is None:
        return MISFIT
    try:
        moment = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        return MISFIT
    if not 1 <= moment.year <= 9999:
        return MISFIT
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if moment.year >= 1000 else MISFIT


def varchar(value: Any, allow_nul: bool = True) -> Any:
    """Any JSON value as text: strings as they are, everything else as compact JSON."""
    text = value if type(value) is str else _encode(value).decode()
    if not allow_nul and "\x00" in text:
        return MISFIT  # PostgreSQL text cannot hold U+0000
    return text


def fit(value: Any, column: LogicalType, allow_nul: bool = True) -> Any:
    """``value`` converted to the column's type, or :data:`MISFIT`. ``None`` stays ``None``.

    Lossless conversions only: an integral float fits an ``integer`` column, an integer fits a
    ``float`` column, anything fits ``varchar`` (as JSON text); a string never becomes a number.
    """
    if value is None:
        return None
    kind = type(value)
    if column == "varchar":
        if kind is str and allow_nul:
            return value
        return varchar(value, allow_nul)
    if column == "timestamp":
        return timestamp(value) if kind is str else MISFIT
    if column == "integer":
        if kind is int:
            return value if _INT64[0] <= value <= _INT64[1] else MISFIT
        if kind is float and value.is_integer() and -(2.0**63) <= value < 2.0**63:
            return int(value)
        return MISFIT
    if column == "float":
        if kind is float:
            return value
        if kind is int:
            try:
                return float(value)
            except OverflowError:  # beyond a double's range: keep it whole in discards
                return MISFIT
        return MISFIT
    if column == "boolean":
        return value if kind is bool else MISFIT
    raise ValueError(f"unknown column type {column!r}; expected one of {', '.join(TYPES)}")
