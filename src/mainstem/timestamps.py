"""Timestamps the way Segment reads and writes them (reference §3).

Internally a timestamp is an ``int`` of microseconds since the Unix epoch (UTC); on the wire it is
ISO-8601 UTC with milliseconds and ``Z`` (``2020-09-18T14:40:53.000Z``, reference §2.10).
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
# Lenient form for what fromisoformat refuses: non-padded fields (Segment's own batch example has
# `2015-2-02T00:30:08.276Z`), a space separator, any number of fraction digits, `+hh`, `+hhmm`.
_LENIENT = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[Tt ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:[.,](\d+))?)?)?"
    r"\s*(?:([Zz])|([+-])(\d{2}):?(\d{2})?)?\s*$"
)


def now_us() -> int:
    return time.time_ns() // 1000


def parse(value: object) -> int | None:
    """Microseconds since the epoch, or ``None`` when ``value`` is not an ISO-8601 string.

    Naive values are taken as UTC (reference §3.3: "Naive datetimes → assume UTC").
    """
    if not isinstance(value, str) or not value:
        return None
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _parse_lenient(value)
        if parsed is None:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // _US


def _parse_lenient(value: str) -> datetime | None:
    match = _LENIENT.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if sign and not zulu:
        offset = timedelta(hours=int(off_h), minutes=int(off_m or 0))
        parsed = parsed - offset if sign == "+" else parsed + offset
    return parsed


def format_us(us: int) -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (sub-millisecond digits are dropped)."""
    seconds, micro = divmod(us, 1_000_000)
    return f"{_second(seconds)}.{micro // 1000:03d}Z"


@functools.lru_cache(maxsize=8192)
def _second(seconds: int) -> str:
    # Cached: the events of one request, and of one busy second, share it (hot in the processor).
    moment = _EPOCH + timedelta(seconds=seconds)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def in_range(us: int) -> bool:
    """Whether ``us`` can be written as a four-digit-year ISO timestamp."""
    return -62135596800_000000 <= us <= 253402300799_999999
