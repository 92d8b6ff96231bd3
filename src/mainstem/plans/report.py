"""Violations you can act on: counts per source, event, field and violation type over time, with
a sample of offending payloads — what ``GET /api/v1/violations`` and ``mainstem violations``
show (Segment's Violations view, reference §1.6, with windows of any length)."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from mainstem import timestamps
from mainstem.errors import RequestError
from mainstem.settings import parse_duration
from mainstem.storage import PipelineStore, ViolationCount, ViolationQuery, ViolationRow

DEFAULT_SINCE = "24h"
DEFAULT_BUCKET = "1h"
MAX_SAMPLES = 100


@dataclasses.dataclass(slots=True)
class Summary:
    source_id: str
    event: str
    field: str
    type: str
    count: int = 0
    last_seen: int = 0
    series: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    """(bucket start µs, count), oldest first."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "event": self.event,
            "field": self.field,
            "type": self.type,
            "count": self.count,
            "last_seen": timestamps.format_us(self.last_seen),
            "series": [
                {"at": timestamps.format_us(start), "count": count} for start, count in self.series
            ],
        }


def summarize(counts: list[ViolationCount]) -> list[Summary]:
    """One summary per (source, event, field, type), most frequent first."""
    found: dict[tuple[str, str, str, str], Summary] = {}
    for row in counts:
        key = (row.source_id, row.event, row.field, row.type)
        summary = found.setdefault(key, Summary(*key))
        summary.count += row.count
        summary.last_seen = max(summary.last_seen, row.last_seen)
        summary.series.append((row.bucket, row.count))
    for summary in found.values():
        summary.series.sort()
    return sorted(found.values(), key=lambda s: (-s.count, s.source_id, s.event, s.field, s.type))


def sample_json(row: ViolationRow) -> dict[str, Any]:
    v = row.violation
    return {
        "seq": row.seq,
        "source_id": row.source_id,
        "received_at": timestamps.format_us(v.received_at),
        "message_id": v.message_id,
        "message_type": v.message_type,
        "event": v.event,
        "event_version": v.event_version,
        "plan": v.plan,
        "type": v.type,
        "field": v.field,
        "description": v.description,
        "action": v.action,
        "payload": _payload(v.payload),
    }


def bucket_us(value: str) -> int:
    """A bucket width such as ``15m``, ``1h`` or ``1d``, in µs.

    Raises:
        RequestError: not a positive duration.
    """
    try:
        seconds = parse_duration(value)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise RequestError(
            f"bucket={value!r} is not a duration — use e.g. 15m, 1h or 1d",
            code="invalid_bucket",
        )
    return int(seconds * 1_000_000)


def report(
    store: PipelineStore, query: ViolationQuery, bucket: int, samples: int
) -> dict[str, Any]:
    """The violations report: summaries and the newest ``samples`` offending payloads."""
    summaries = summarize(store.violation_counts(query, bucket))
    rows = (
        store.violations(ViolationQuery(**{**_fields(query), "limit": samples})) if samples else []
    )
    return {
        "since": timestamps.format_us(query.since) if query.since is not None else None,
        "bucket_seconds": bucket // 1_000_000,
        "total": sum(s.count for s in summaries),
        "data": [s.to_json() for s in summaries],
        "samples": [sample_json(row) for row in rows],
    }


def _fields(query: ViolationQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in ViolationQuery.__slots__}


def _payload(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")
