"""Event-name styles: which a name fits, which most names share, and the rename suggested."""

from __future__ import annotations

import pytest

from mainstem.plans.lint.casing import dominant, recase, styles_of


@pytest.mark.parametrize(
    ("name", "styles"),
    [
        ("Order Completed", {"Title Case"}),
        ("Signup", {"Title Case"}),
        ("order_completed", {"snake_case"}),
        ("search", {"snake_case", "camelCase", "kebab-case"}),
        ("orderCompleted", {"camelCase"}),
        ("Order completed", {"Sentence case"}),
        ("order completed", {"lower case"}),
        ("order-completed", {"kebab-case"}),
        ("OrderCompleted", {"PascalCase", "Title Case"}),
        ("ORDER_COMPLETED", {"SCREAMING_SNAKE_CASE"}),
        ("Order  Completed!", set()),
    ],
)
def test_styles_of(name: str, styles: set[str]) -> None:
    assert styles_of(name) == styles


def test_dominant_counts_distinct_names_and_prefers_title_case_on_ties() -> None:
    assert dominant(["a_b", "a_b", "a_b", "Cart Viewed", "Order Completed"]) == ("Title Case", 2)
    assert dominant(["order_completed", "Cart Viewed"]) == ("Title Case", 1)
    assert dominant(["order_completed", "cart_viewed", "Cart Viewed"]) == ("snake_case", 2)
    assert dominant(["Only One", "Only One"]) is None


@pytest.mark.parametrize(
    ("style", "renamed"),
    [
        ("Title Case", "Order Completed"),
        ("snake_case", "order_completed"),
        ("camelCase", "orderCompleted"),
        ("Sentence case", "Order completed"),
        ("lower case", "order completed"),
        ("kebab-case", "order-completed"),
        ("PascalCase", "OrderCompleted"),
        ("SCREAMING_SNAKE_CASE", "ORDER_COMPLETED"),
    ],
)
def test_recase(style: str, renamed: str) -> None:
    assert recase("orderCompleted", style) == renamed
    assert styles_of(renamed) >= {style}
