"""Names split into words and re-cased, for the linter and codegen."""

from __future__ import annotations

import pytest

from mainstem.plans import words


@pytest.mark.parametrize(
    ("name", "split", "pascal", "camel", "snake"),
    [
        ("Order Completed", ["Order", "Completed"], "OrderCompleted", "orderCompleted",
         "order_completed"),
        ("orderTotal", ["order", "Total"], "OrderTotal", "orderTotal", "order_total"),
        ("HTMLBody", ["HTML", "Body"], "HTMLBody", "htmlBody", "html_body"),
        ("user-SSN", ["user", "SSN"], "UserSSN", "userSSN", "user_ssn"),
        ("2fa enabled", ["2fa", "enabled"], "_2faEnabled", "2faEnabled", "2fa_enabled"),
        ("", [], "Event", "event", "event"),
    ],
)  # fmt: skip
def test_recasing(name: str, split: list[str], pascal: str, camel: str, snake: str) -> None:
    assert words.split(name) == split
    assert (words.pascal(name), words.camel(name), words.snake(name)) == (pascal, camel, snake)


def test_phrases() -> None:
    logouts = frozenset({"log out", "logout", "sign out"})
    assert words.has_phrase("userEmailAddress", frozenset({"email"}))
    assert not words.has_phrase("emailed", frozenset({"email"}))
    assert words.ends_with_phrase("handleLogOut", logouts)
    assert words.ends_with_phrase("on_sign_out", logouts)
    assert not words.ends_with_phrase("logoutButtonLabel", logouts)


def test_unique() -> None:
    taken = {"Order"}
    assert [words.unique("Order", taken) for _ in range(2)] == ["Order2", "Order3"]
    assert taken == {"Order", "Order2", "Order3"}
