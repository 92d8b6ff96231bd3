"""FQL: the reference's examples and null rules, and parse errors with their column."""

from __future__ import annotations

from typing import Any

import pytest

from mainstem.destinations import fql

EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Button Clicked",
    "userId": "",
    "properties": {
        "title": "Home",
        "features": ["dark-mode", "beta"],
        "price": 12.5,
        "count": 3,
        "flag": True,
        "product 1": {"price": 4},
        "name": "アイ",
    },
    "context": {"library": {"version": "2.1.0"}},
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("all", True),
        ("type = 'track' and match(event, 'Button *')", True),
        ("match(event, 'Button ?')", False),
        ("match(event, '[AB]utton*')", True),
        ("length(userId) < 1", True),
        ("!(type in ['track', 'identify'])", False),
        ("'dark-mode' in properties.features", True),
        ("'light' in properties.features", False),
        ('event = "Button Clicked"', True),
        ("event != 'Button Clicked'", False),
        ("properties.price > 12", True),
        ("properties.price >= 12.5 and properties.count <= 3", True),
        ("properties.title > 1", False),
        ("properties.count = 3.0", True),
        ("properties.flag = true", True),
        ("properties.flag = 1", False),
        ("properties.missing = null", True),
        ("properties.missing != 'x'", True),
        ("contains(properties.title, 'om')", True),
        ("contains(properties.missing, 'x')", False),
        ("lowercase(properties.title) = 'home'", True),
        ("uppercase(properties.title) = 'HOME'", True),
        ("snakecase('Order Completed') = 'order_completed'", True),
        ("kebabcase('Order Completed') = 'order-completed'", True),
        ("titlecase('order completed') = 'Order Completed'", True),
        ("lowercase(properties.missing) = null", True),
        ("typeof(properties.features) = 'list'", True),
        ("typeof(properties.price) = 'number'", True),
        ("typeof(properties.flag) = 'bool'", True),
        ("typeof(nothing) = 'null'", True),
        ("length(properties.name) = 6", True),
        ("length(properties.missing) = 0", True),
        ("properties.product\\ 1.price = 4", True),
        ("context.library.version = '2.1.0'", True),
        ("properties.missing or type = 'track'", True),
        ("properties.missing and type = 'track'", False),
        ("!properties.missing", True),
        ("(type = 'page' or type = 'track') and !(event = 'x')", True),
    ],
)
def test_conditions(condition: str, expected: bool) -> None:
    assert fql.matches(fql.parse(condition), EVENT) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("", "the condition is empty — write `all` to match every event"),
        ("event = ", "the condition ends early"),
        ("event = 'x' 'y'", "unexpected \"'y'\" at column 13"),
        ("event = 'x' and", "the condition ends early"),
        ("(event = 'x'", "the condition ends early — expected ')'"),
        ("event # 'x'", "unexpected character at column 7"),
        (
            "upper(event)",
            "unknown function 'upper' at column 1 — known: contains, kebabcase, "
            "length, lowercase, match, snakecase, titlecase, typeof, uppercase",
        ),
        ("contains(event)", "contains() takes 2 argument(s), got 1"),
        ("= 'x'", "expected a value at column 1, got '='"),
    ],
)
def test_parse_errors(condition: str, message: str) -> None:
    with pytest.raises(fql.FqlError) as caught:
        fql.parse(condition)
    assert str(caught.value) == message
