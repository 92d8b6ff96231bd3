"""Which delivery failures are retried, and how long to wait (pure).

Segment retries timeouts, connection errors, 429 and 5xx for up to 4 hours with randomized
exponential backoff, and discards other 4xx (segment-governance.md §8.2). Like the Actions
framework we also retry 408 and 423 and treat 501 (Not Implemented) as final.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

Verdict = Literal["ok", "retry", "discard"]


@dataclass(frozen=True, slots=True)
class Response:
    """What a transport saw: an HTTP status, or ``status=None`` and a network ``error``."""

    status: int | None
    error: str = ""
    retry_after: str | None = None
    body: str = ""
    """The start of the response body, for the delivery log."""
    final: bool = False
    """Nothing was sent and trying again cannot help: a function's ValidationError, a vendor
    mapping that failed."""

    def describe(self) -> str:
        if self.status is None:
            return self.error
        text = f"HTTP {self.status}"
        return f"{text}: {self.body}" if self.body else text


_RETRYABLE = frozenset({408, 423, 429})


def classify(response: Response) -> Verdict:
    status = response.status
    if response.final:
        return "discard"
    if status is None:
        # connection refused / reset, DNS, timeout; or a function that rejected the event
        return "discard" if response.final else "retry"
    if 200 <= status < 300:
        return "ok"
    if status in _RETRYABLE or (status >= 500 and status != 501):
        return "retry"
    return "discard"


def retry_after_seconds(header: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (epoch seconds); delta-seconds or an HTTP date."""
    if header is None or not header.strip():
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def backoff(attempt: int, rng: random.Random, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Jittered exponential backoff before retry number ``attempt`` (1-based): a uniform draw
    from the upper half of ``min(cap, base * 2**(attempt-1))``, so many destinations failing at
    once do not retry in step."""
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 30))
    return ceiling / 2 + rng.random() * ceiling / 2


def delay(
    attempt: int,
    response: Response,
    now: float,
    rng: random.Random,
    *,
    base: float = 1.0,
    cap: float = 300.0,
) -> float:
    """How long to wait before the next attempt; ``Retry-After`` wins when the server sent it."""
    asked = retry_after_seconds(response.retry_after, now)
    if asked is not None:
        return asked
    return backoff(attempt, rng, base=base, cap=cap)
