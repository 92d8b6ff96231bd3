"""Names: go-snakecase's own test table (reference §7.2) and our fix-ups."""

from __future__ import annotations

import pytest

from mainstem.warehouse import naming


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sample text", "sample_text"),
        ("sample-text", "sample_text"),
        ("sample_text", "sample_text"),
        ("sample___text", "sample_text"),
        ("sampleText", "sample_text"),
        ("inviteYourCustomersAddInvites", "invite_your_customers_add_invites"),
        ("sample 2 Text", "sample_2_text"),
        ("   sample   2    Text   ", "sample_2_text"),
        ("   $#$sample   2    Text   ", "sample_2_text"),
        ("SAMPLE 2 TEXT", "sample_2_text"),
        ("___$$Base64Encode", "base64_encode"),
        ("FOO:BAR$BAZ", "foo_bar_baz"),
        ("FOO#BAR#BAZ", "foo_bar_baz"),
        ("something.com", "something_com"),
        ("$something%", "something"),
        ("•¶§ƒ˚foo˙∆˚¬", "foo"),
        ("HTMLParser", "htmlparser"),
        ("userID", "user_id"),
        ("abc1Def", "abc_1def"),
        ("101 Account Update", "101_account_update"),
        ("日本", ""),
    ],
)
def test_snakecase(text: str, expected: str) -> None:
    assert naming.snakecase(text) == expected


@pytest.mark.parametrize(
    ("event", "table"),
    [
        ("Order Completed", "order_completed"),
        ("101 Account Update", "_101_account_update"),
        ("Open", "_open"),
        ("Pages", "_pages"),
        ("users", "_users"),
        ("日本", "_event_44da6bbc"),
        ("x" * 70, "x" * 54 + "_bbaad84b"),
    ],
)
def test_event_tables(event: str, table: str) -> None:
    assert naming.event_table(event) == table


def test_long_names_stay_apart() -> None:
    first, second = naming.fit_length("a" * 64), naming.fit_length("a" * 65)
    assert (len(first), len(second)) == (63, 63)
    assert first != second


@pytest.mark.parametrize(
    ("source", "schema"),
    [
        ("web", "web"),
        ("ios-app", "ios_app"),
        ("pg_x", "_pg_x"),
        ("information_schema", "_information_schema"),
    ],
)
def test_schemas(source: str, schema: str) -> None:
    assert naming.schema(source) == schema
