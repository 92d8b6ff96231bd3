from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mainstem import timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00.123Z"),
        ("2024-05-01T10:00:00.123456+00:00", "2024-05-01T10:00:00.123Z"),  # python's sentAt
        ("2024-05-01T12:00:00.5+02:00", "2024-05-01T10:00:00.500Z"),
        ("2024-05-01T10:00:00", "2024-05-01T10:00:00.000Z"),  # naive → UTC
        ("2015-2-02T00:30:08.276Z", "2015-02-02T00:30:08.276Z"),  # Segment's own example
        ("2024-05-01 10:00:00Z", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T10:00:00.1234567891Z", "2024-05-01T10:00:00.123Z"),
        ("2024-05-01T05:00:00-0500", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01", "2024-05-01T00:00:00.000Z"),
    ],
)
def test_parses_what_sdks_send(text: str, expected: str) -> None:
    parsed = timestamps.parse(text)
    assert parsed is not None
    assert timestamps.format_us(parsed) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2024-13-01T00:00:00Z",
        1714557600,
        None,
        "2024-05-01T25:00:00Z",
        ["2024-05-01"],
    ],
)
def test_unparseable_is_none(value: object) -> None:
    assert timestamps.parse(value) is None


@given(st.datetimes(timezones=st.just(__import__("datetime").UTC)))
def test_format_then_parse_round_trips_to_the_millisecond(moment: object) -> None:
    import datetime

    assert isinstance(moment, datetime.datetime)
    us = timestamps.parse(moment.isoformat())
    assert us is not None
    text = timestamps.format_us(us)
    again = timestamps.parse(text)
    assert again == us - us % 1000
    assert text.endswith("Z") and len(text) == 24
