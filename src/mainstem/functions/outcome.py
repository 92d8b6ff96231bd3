"""What the result of one function call means (pure): retried, discarded, or which HTTP answer.

Segment's table (segment-governance.md §8.4). An exception the function raised that is none of
the three classes is Segment's "Bad Request": discarded, so a bug does not hold the
destination's queue for the whole retry window — the events wait in the dead letters, and
``mainstem replay --dead-letters`` sends them once the function is fixed. What went wrong around
the function (out of memory, a timeout, a crash, a file that does not load) is retried.

=================  ===================  =================  ====================================
kind               raised / happened    destination        source function (HTTP answer)
=================  ===================  =================  ====================================
``retry``          ``RetryError``       retry              503 ``function_retry``
``reject``         ``ValidationError``  discard            400 ``function_rejected``
``unsupported``    ``EventNotSupported`` discard           400 ``function_rejected``
``exception``      any other exception  discard            500 ``function_failed``
``error``          out of memory, or    retry              500 ``function_failed``
                   the worker failed
``timeout``        over the time limit  retry              503 ``function_timeout``
``crash``          the process died     retry              500 ``function_failed``
``load``           the file won't load  retry              500 ``function_failed``
=================  ===================  =================  ====================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal[
    "", "retry", "reject", "unsupported", "exception", "error", "timeout", "crash", "load"
]
Verdict = Literal["ok", "retry", "discard"]

_DISCARDED = frozenset({"reject", "unsupported", "exception"})
_KINDS = frozenset(
    {"retry", "reject", "unsupported", "exception", "error", "timeout", "crash", "load"}
)


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one call: ``kind == ""`` is success."""

    kind: Kind = ""
    error: str = ""
    """The exception's class name, or ``Timeout`` / ``Crash`` / ``LoadError``."""
    message: str = ""
    emitted: tuple[dict[str, Any], ...] = ()
    """The Segment calls a source function made."""
    results: tuple[Result, ...] = ()
    """For a batch sent to per-type handlers: one result per event."""

    @property
    def ok(self) -> bool:
        return self.kind == ""

    def describe(self) -> str:
        if self.ok:
            return "ok"
        return f"{self.error}: {self.message}" if self.message else self.error


def from_reply(reply: Mapping[str, Any]) -> Result:
    """A worker's reply frame as a :class:`Result`; a malformed one counts as an error."""
    if reply.get("ok") is True:
        emitted = reply.get("emitted") or []
        results = reply.get("results") or []
        if not isinstance(emitted, list) or not isinstance(results, list):
            return Result("error", "ProtocolError", "the worker sent a malformed reply")
        return Result(
            emitted=tuple(item for item in emitted if isinstance(item, dict)),
            results=tuple(from_reply(item) for item in results if isinstance(item, Mapping)),
        )
    kind = reply.get("kind")
    if kind not in _KINDS:
        return Result("error", "ProtocolError", f"the worker sent an unknown kind {kind!r}")
    return Result(kind, str(reply.get("error", "")), str(reply.get("message", "")))


def verdict(result: Result) -> Verdict:
    """For a destination: retry with backoff, or discard (dead letter) without retrying."""
    if result.results:
        return batch_verdict(result.results)
    if result.ok:
        return "ok"
    return "discard" if result.kind in _DISCARDED else "retry"


def batch_verdict(results: Sequence[Result]) -> Verdict:
    """A batch shares one status, as in Segment (§8.2): retried if any event asks for a retry,
    else discarded if any was rejected, else delivered."""
    verdicts = {verdict(result) for result in results}
    if "retry" in verdicts:
        return "retry"
    return "discard" if "discard" in verdicts else "ok"


def batch_failure(results: Sequence[Result]) -> Result:
    """The result that decided a failed batch's fate, with how many events failed."""
    wanted = batch_verdict(results)
    failed = [result for result in results if verdict(result) == wanted]
    first = failed[0]
    return Result(
        first.kind,
        first.error,
        f"{first.message} ({len(failed)} of {len(results)} events in the batch)",
    )


@dataclass(frozen=True, slots=True)
class HttpError:
    status: int
    code: str


def http_error(result: Result) -> HttpError:
    """What a source function's failure answers to the webhook's sender."""
    if result.kind in ("reject", "unsupported"):
        return HttpError(400, "function_rejected")
    if result.kind == "retry":
        return HttpError(503, "function_retry")
    if result.kind == "timeout":
        return HttpError(503, "function_timeout")
    return HttpError(500, "function_failed")
