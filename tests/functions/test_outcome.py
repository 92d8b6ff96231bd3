"""What a function's result means for delivery and for a webhook's answer (pure)."""

from __future__ import annotations

import pytest

from mainstem.destinations import retry
from mainstem.functions import outcome
from mainstem.functions.destination import response
from mainstem.functions.outcome import Result


@pytest.mark.parametrize(
    ("kind", "verdict", "status", "code"),
    [
        ("retry", "retry", 503, "function_retry"),
        ("reject", "discard", 400, "function_rejected"),
        ("unsupported", "discard", 400, "function_rejected"),
        ("exception", "discard", 500, "function_failed"),
        ("error", "retry", 500, "function_failed"),
        ("timeout", "retry", 503, "function_timeout"),
        ("crash", "retry", 500, "function_failed"),
        ("load", "retry", 500, "function_failed"),
    ],
)
def test_each_kind_of_failure(kind: outcome.Kind, verdict: str, status: int, code: str) -> None:
    result = Result(kind, "SomeError", "what happened")
    assert outcome.verdict(result) == verdict
    assert outcome.http_error(result) == outcome.HttpError(status, code)
    delivery = response(result)
    assert retry.classify(delivery) == verdict
    assert delivery.describe() == "SomeError: what happened"


def test_success_is_delivered() -> None:
    assert outcome.verdict(Result()) == "ok"
    assert retry.classify(response(Result())) == "ok"


def test_a_batch_shares_the_worst_outcome_retry_first() -> None:
    ok, rejected, retried = (
        Result(),
        Result("reject", "ValidationError", "no email"),
        Result("retry", "RetryError", "503"),
    )
    assert outcome.batch_verdict([ok, ok]) == "ok"
    assert outcome.batch_verdict([ok, rejected]) == "discard"
    assert outcome.batch_verdict([rejected, retried, ok]) == "retry"
    failed = response(Result(results=(ok, rejected, rejected)))
    assert retry.classify(failed) == "discard"
    assert failed.describe() == "ValidationError: no email (2 of 3 events in the batch)"


def test_malformed_replies_are_errors_not_crashes() -> None:
    assert outcome.from_reply({"ok": False, "kind": "nonsense"}).kind == "error"
    assert outcome.from_reply({"ok": True, "emitted": "x"}).kind == "error"
    assert outcome.from_reply({"ok": True, "emitted": [{"type": "track"}, 3]}).emitted == (
        {"type": "track"},
    )
