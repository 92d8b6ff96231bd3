"""A destination function as a delivery transport: the courier's retries, backoff, dead letters
and replay apply to it as to any webhook.

One event goes to the handler of its type (``on_track`` …). With ``batch.size`` above 1, a batch
goes to ``on_batch(events, settings)`` when the file defines it, otherwise each event to its own
handler in one round trip; the batch then shares one outcome (Segment, §8.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mainstem.destinations.retry import Response
from mainstem.destinations.spec import Destination
from mainstem.functions import outcome
from mainstem.functions.api import HANDLERS
from mainstem.functions.outcome import Result
from mainstem.functions.runner import Pool
from mainstem.functions.spec import FunctionSpec


class FunctionTransport:
    def __init__(self, destination: Destination, spec: FunctionSpec) -> None:
        self.spec = spec
        self.batched = destination.batch_size > 1 and "on_batch" in spec.handlers
        self.pool = Pool(
            spec.file, spec.limits, name=f"{spec.file.name} (destination {destination.id})"
        )

    def send(
        self, messages: Sequence[dict[str, Any]], raw: Sequence[bytes] | None = None
    ) -> Response:
        """``raw`` (the stored bytes) is not used: functions take the decoded messages."""
        settings = dict(self.spec.settings)
        if self.batched:
            result = self.pool.call("on_batch", list(messages), settings)
        elif len(messages) == 1:
            (message,) = messages
            entry = HANDLERS.get(str(message.get("type")), "on_unknown")
            result = self.pool.call(entry, message, settings)
        else:
            result = self.pool.call("events", list(messages), settings)
        return response(result)

    def close(self) -> None:
        self.pool.close()


def response(result: Result) -> Response:
    """A function's result in the courier's terms (pure)."""
    verdict = outcome.verdict(result)
    if verdict == "ok":
        return Response(200)
    if result.results:
        result = outcome.batch_failure(result.results)
    return Response(None, result.describe(), final=verdict == "discard")
