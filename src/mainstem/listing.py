"""The JSON shape of a stored event and of a rejection, one for the admin API's lists and the
CLI's ``--json`` lines."""

from __future__ import annotations

from typing import Any

import msgspec

from mainstem import timestamps
from mainstem.storage import EventRow, RejectionRow


def payload_json(raw: bytes) -> msgspec.Raw | str:
    """Stored JSON spliced in as JSON; anything that is not JSON as text."""
    try:
        msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return raw.decode("utf-8", "replace")
    return msgspec.Raw(raw)


def event_json(row: EventRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "source_id": row.source_id,
        "received_at": timestamps.format_us(row.received_at),
        "message": msgspec.Raw(row.body),
    }


def rejection_json(row: RejectionRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "source_id": row.source_id,
        "received_at": timestamps.format_us(row.received_at),
        "code": row.code,
        "reason": row.reason,
        "payload": payload_json(row.payload),
    }
