"""What the gateway commits to the event log: one accepted HTTP request.

The gateway stays thin (authenticate, bound the size, check the JSON, commit): the body is kept
as received (gzip already decoded), and the processor turns it into normalized messages with
:mod:`mainstem.intake`. Everything the processor needs to do that deterministically — the source,
the single ``receivedAt`` of the request (reference §1.5), the caller's address and whether the
path is a client path — is recorded next to the body.
"""

from __future__ import annotations

import msgspec


class LogRecord(msgspec.Struct, frozen=True):
    source_id: str
    received_at: int
    """Microseconds since the epoch: the server clock when the request arrived."""
    body: bytes
    """The JSON body: a batch envelope, or one message when ``path_type`` is set."""
    path_type: str | None = None
    """The message type implied by a single-event path (``/v1/track``, ``/v1/t``, pixel)."""
    client: bool = False
    """Sent to a client path (``/v1/b``, one-letter paths, pixel): browser or mobile channel."""
    ip: str | None = None
    """The caller's address (the socket peer, or X-Forwarded-For from a trusted proxy)."""
    seq: int = 0
    """Position in the log partition, assigned when the record is appended."""
