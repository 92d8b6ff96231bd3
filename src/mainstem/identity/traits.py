"""Profile traits merged by event time, not arrival (reference §3.5).

Each trait keeps the event time (``timestamp``, µs) of the value it holds. A value replaces it
only when its event is at least as new, so a late-arriving older identify never overwrites a
newer value; ties go to the later arrival. ``null`` removes a trait but leaves a tombstone with its
time, so an older event cannot bring the value back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec


class Trait(msgspec.Struct, frozen=True, gc=False):
    value: Any
    updated_at: int
    """Event time of the value (µs since the epoch)."""
    source_id: str
    removed: bool = False


def newer(current: Trait | None, candidate: Trait) -> bool:
    return current is None or candidate.updated_at >= current.updated_at


def apply(
    traits: dict[str, Trait], incoming: Mapping[str, Any], at: int, source_id: str
) -> list[str]:
    """Upsert ``incoming`` into ``traits`` at event time ``at``; returns the keys that changed."""
    changed: list[str] = []
    for key, value in incoming.items():
        candidate = Trait(value, at, source_id, removed=value is None)
        if newer(traits.get(key), candidate):
            traits[key] = candidate
            changed.append(key)
    return changed


def combine(into: dict[str, Trait], other: Mapping[str, Trait]) -> None:
    """Merge another profile's traits: per key, the value with the newest event time wins."""
    for key, trait in other.items():
        current = into.get(key)
        if current is None or trait.updated_at > current.updated_at:
            into[key] = trait


def visible(traits: Mapping[str, Trait]) -> dict[str, Trait]:
    return {key: trait for key, trait in traits.items() if not trait.removed}
