"""Reading Segment messages for vendor mappings (pure)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from mainstem.destinations.integrations import message as m


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        (12.5, 12.5),
        ("12", 12),
        ("12.0", 12.0),
        ("1e3", 1000),
        ("1e400", None),
        ("nan", None),
        ("twelve", None),
        (True, None),
        (None, None),
    ],
)
def test_number(value: object, expected: object) -> None:
    assert m.number(value) == expected


@pytest.mark.parametrize(
    ("message_id", "expected"),
    [
        ("api-1joj5LZSzuVCI9KshnaX059JYKo", "api-1joj5LZSzuVCI9KshnaX059JYKo"),
        ("4a6e1f0c-0f8a-4c4e-9a3b-6a9a0c1d2e3f", "4a6e1f0c-0f8a-4c4e-9a3b-6a9a0c1d2e3f"),
        ("ajs-next-1714557600000-abc.def", hashlib.sha256(b"ajs-next-1714557600000-abc.def")),
        ("x" * 37, hashlib.sha256(b"x" * 37)),
    ],
)
def test_insert_id_is_the_message_id_when_mixpanel_takes_it(message_id: str, expected: Any) -> None:
    want = expected if isinstance(expected, str) else expected.hexdigest()[:32]
    assert m.insert_id({"messageId": message_id}) == want


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("user-1", "user-1"),
        (42, "42"),
        ("null", None),
        ("Anonymous", None),
        ("", None),
        (None, None),
    ],
)
def test_placeholder_ids_are_no_ids(value: object, expected: str | None) -> None:
    assert m.user_id({"userId": value}) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Order Completed", "order_completed"), ("firstName", "first_name"), ("  a--b ", "a_b")],
)
def test_snake(name: str, expected: str) -> None:
    assert m.snake(name) == expected


def test_email_comes_from_traits_then_context_traits_then_properties() -> None:
    assert m.email({"type": "identify", "traits": {"email": "a@b.co"}}) == "a@b.co"
    assert m.email({"context": {"traits": {"email": "c@d.co"}}, "properties": {}}) == "c@d.co"
    assert m.email({"properties": {"email": "e@f.co"}}) == "e@f.co"
    assert m.email({"traits": {"email": "not an email"}}) is None


def test_products_are_the_list_or_the_single_product() -> None:
    assert m.products({"properties": {"products": [{"sku": "a"}, "junk"]}}) == [{"sku": "a"}]
    assert m.products({"properties": {"product_id": "p"}}) == [{"product_id": "p"}]
    assert m.products({"properties": {"query": "x"}}) == []
