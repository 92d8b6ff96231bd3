"""From a committed log record to normalized messages and rejections: pure, no I/O.

The gateway already checked that the body is JSON of the right outer shape; this module applies
the per-message rules (size, batch limit, :func:`mainstem.message.normalize`) so that one bad
message in a batch is rejected with its discard code while the others are accepted — as Segment
does (reference §1.6–§1.7).
"""

from __future__ import annotations

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
    index: int | None = None


Outcome = Accepted | Rejected


class Envelope(msgspec.Struct):
    """A batch body with each element kept as raw JSON, so sizes are measured as sent."""

    batch: list[msgspec.Raw] | None = None
    sentAt: Any = None  # noqa: N815 - Segment's wire name
    context: Any = None
    integrations: Any = None


_envelope_decoder = msgspec.json.Decoder(Envelope)
_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def is_oversize(raw: bytes, limit: int) -> bool:
    """Whether a message's compact JSON exceeds ``limit`` bytes (reference §1.6)."""
    return len(raw) > limit and len(_encoder.encode(_any_decoder.decode(raw))) > limit


def unpack(record: LogRecord, partition: str, limits: Limits) -> list[Outcome]:
    """Every message of ``record``, accepted or rejected, in the order sent."""
    request = Request(received_at=record.received_at, client=record.client, ip=record.ip)
    seed = f"{partition}:{record.seq}"
    if record.path_type is not None:
        return [_one(record.body, request, f"{seed}:0", record.path_type, None, limits, None)]
    try:
        envelope = _envelope_decoder.decode(record.body)
    except msgspec.DecodeError as exc:  # the gateway checked this; a log written by hand may not
        return [Rejected("invalid_json", f"the batch body is not valid: {exc}", record.body)]
    if not envelope.batch:
        return [Rejected("empty_batch", "the batch array contains no messages", record.body)]
    shared = {"sentAt": envelope.sentAt, "context": envelope.context,
              "integrations": envelope.integrations}
    outcomes: list[Outcome] = []
    for index, raw in enumerate(envelope.batch):
        if index >= limits.max_batch_events:
            outcomes.append(Rejected(
                "batch_too_large",
                f"a batch carries at most {limits.max_batch_events} messages; this one had "
                f"{len(envelope.batch)} — send the rest in another request",
                bytes(raw), index))
            continue
        outcomes.append(_one(bytes(raw), request, f"{seed}:{index}", None, shared, limits, index))
    return outcomes


def _one(raw: bytes, request: Request, seed: str, path_type: str | None,
         envelope: dict[str, Any] | None, limits: Limits, index: int | None) -> Outcome:
    if is_oversize(raw, limits.max_event_bytes):
        return Rejected("message_too_large",
                        f"the message is {len(raw)} bytes; the limit is {limits.max_event_bytes}",
                        raw, index)
    result = normalize(_any_decoder.decode(raw), request, seed=seed, path_type=path_type,
                       envelope=envelope)
    if isinstance(result, Rejection):
        return Rejected(result.code, result.reason, raw, index)
    return Accepted(result, _encoder.encode(result))
