"""Retry classification and backoff (pure)."""

from __future__ import annotations

import random

import pytest

from mainstem.destinations import retry
from mainstem.destinations.retry import Response


@pytest.mark.parametrize(
    ("response", "verdict"),
    [
        (Response(200), "ok"),
        (Response(204), "ok"),
        (Response(None, "ConnectError: refused"), "retry"),
        (Response(None, "cannot map the batch", final=True), "discard"),
        (Response(408), "retry"),
        (Response(423), "retry"),
        (Response(429), "retry"),
        (Response(500), "retry"),
        (Response(503), "retry"),
        (Response(599), "retry"),
        (Response(501), "discard"),
        (Response(400), "discard"),
        (Response(401), "discard"),
        (Response(403), "discard"),
        (Response(404), "discard"),
        (Response(302), "discard"),
    ],
)
def test_classify(response: Response, verdict: str) -> None:
    assert retry.classify(response) == verdict


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    assert retry.retry_after_seconds("7", now) == 7.0
    assert retry.retry_after_seconds("Tue, 14 Nov 2023 22:13:50 GMT", now) == 30.0
    assert retry.retry_after_seconds("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0.0
    assert retry.retry_after_seconds("soon", now) is None
    assert retry.retry_after_seconds(None, now) is None


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 300.0), (80, 300.0)]:
        wait = retry.backoff(attempt, rng)
        assert ceiling / 2 <= wait <= ceiling


def test_retry_after_wins_over_backoff() -> None:
    rng = random.Random(1)
    assert retry.delay(9, Response(429, retry_after="3"), 0.0, rng) == 3.0
    assert 0.5 <= retry.delay(1, Response(503), 0.0, rng) <= 1.0
