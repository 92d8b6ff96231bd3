"""From a committed log record to normalized messages and rejections: pure, no I/O.

The gateway already checked that the body is JSON of the right outer shape; this module applies
the per-message rules (size, batch limit, :func:`mainstem.message.normalize`) so that one bad
message in a batch is rejected with its discard code while the others are accepted — as Segment
does (reference §1.6–§1.7).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import msgspec

from mainstem.logrecord import LogRecord
from mainstem.message import Rejection, Request, normalize


@dataclass(frozen=True, slots=True)
class Limits:
    max_event_bytes: int = 32768
    max_batch_events: int = 2500


@dataclass(frozen=True, slots=True)
class Accepted:
    message: dict[str, Any]
    body: bytes
    """The normalized message as JSON: what the event store keeps."""


@dataclass(frozen=True, slots=True)
class Rejected:
    code: str
    reason: str
    payload: bytes
    """The message as it was sent (the whole body for request-level problems)."""


Outcome = Accepted | Rejected


class Envelope(msgspec.Struct):
    """A batch body with each element kept as raw JSON, so sizes are measured as sent."""

    batch: list[msgspec.Raw] | None = None
    sentAt: Any = None
    context: Any = None
    integrations: Any = None


_envelope_decoder = msgspec.json.Decoder(Envelope)
_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()

# JSON nesting is bounded by the interpreter's recursion limit (msgspec honours it). Mainstem
# raises it so that ~2,900 levels decode; deeper input is rejected as invalid JSON.
JSON_RECURSION_LIMIT = 3000


def allow_deep_json() -> None:
    """Raise this process's recursion limit to :data:`JSON_RECURSION_LIMIT` (never lowers it)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), JSON_RECURSION_LIMIT))


class JsonError(ValueError):
    """The bytes are not JSON we can take; the message says why, for a person."""


def loads(raw: bytes) -> Any:
    """Decode any JSON value; every way it can fail becomes a :class:`JsonError`."""
    try:
        return _any_decoder.decode(raw)
    except msgspec.ValidationError as exc:  # msgspec's only one here: "Number out of range"
        raise JsonError(f"{exc} — JSON numbers must fit a 64-bit float") from exc
    except msgspec.DecodeError as exc:
        raise JsonError(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise JsonError(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    except RecursionError as exc:
        raise JsonError(
            f"nested too deeply (the limit is about {JSON_RECURSION_LIMIT - 100} levels)"
        ) from exc


def compact_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON, the size Segment's limits count (reference §1.6)."""
    return len(_encoder.encode(value))


def unpack(record: LogRecord, partition: str, limits: Limits) -> list[Outcome]:
    """Every message of ``record``, accepted or rejected, in the order sent."""
    request = Request(received_at=record.received_at, client=record.client, ip=record.ip)
    seed = f"{partition}:{record.seq}"
    if record.path_type is not None:
        return [_one(record.body, request, f"{seed}:0", record.path_type, None, limits)]
    try:
        envelope = _envelope_decoder.decode(record.body)
    except (msgspec.DecodeError, RecursionError) as exc:  # the gateway checked; be safe anyway
        return [Rejected("invalid_json", f"the batch body is not valid: {exc}", record.body)]
    if not envelope.batch:
        return [Rejected("empty_batch", "the batch array contains no messages", record.body)]
    shared = {
        "sentAt": envelope.sentAt,
        "context": envelope.context,
        "integrations": envelope.integrations,
    }
    outcomes: list[Outcome] = []
    for index, raw in enumerate(envelope.batch):
        if index >= limits.max_batch_events:
            outcomes.append(
                Rejected(
                    "batch_too_large",
                    f"a batch carries at most {limits.max_batch_events} messages; this one had "
                    f"{len(envelope.batch)} — send the rest in another request",
                    bytes(raw),
                )
            )
            continue
        outcomes.append(_one(bytes(raw), request, f"{seed}:{index}", None, shared, limits))
    return outcomes


def _one(
    raw: bytes,
    request: Request,
    seed: str,
    path_type: str | None,
    envelope: dict[str, Any] | None,
    limits: Limits,
) -> Outcome:
    try:
        decoded = loads(raw)
    except JsonError as exc:
        return Rejected("invalid_json", f"the message is not valid JSON: {exc}", raw)
    if len(raw) > limits.max_event_bytes:
        size = compact_size(decoded)
        if size > limits.max_event_bytes:
            return Rejected(
                "message_too_large",
                f"the message is {size} bytes; the limit is {limits.max_event_bytes}",
                raw,
            )
    result = normalize(decoded, request, seed=seed, path_type=path_type, envelope=envelope)
    if isinstance(result, Rejection):
        return Rejected(result.code, result.reason, raw)
    return Accepted(result, _encoder.encode(result))
