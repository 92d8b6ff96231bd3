"""Building messages and reading the graph back as plain values."""

from __future__ import annotations

from typing import Any

from mainstem.identity.graph import Event, MemoryState, Resolution, resolve
from mainstem.identity.rules import Rules

T0 = "2024-05-01T10:00:00.000Z"


def at(minute: int) -> str:
    return f"2024-05-01T10:{minute:02d}:00.000Z"


def message(type: str = "track", n: int = 0, minute: int = 0, **fields: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": type, "messageId": f"m{n}", "timestamp": at(minute)}
    msg.update(fields)
    return msg


class World:
    def __init__(self, rules: Rules | None = None) -> None:
        from mainstem.identity.graph import counter_ids

        self.state = MemoryState(counter_ids())
        self.rules = rules or Rules()

    def send(self, msg: dict[str, Any], source_id: str = "web") -> Resolution:
        return resolve(self.state, self.rules, Event.from_message(msg, source_id))

    def graph(self, collection: str = "users") -> dict[str, list[str]]:
        """Live profiles → their identifiers as ``type:value``, sorted."""
        return {
            segment_id: sorted(str(key) for key in profile.identifiers)
            for segment_id, profile in sorted(self.state.profiles.items())
            if profile.collection == collection
        }

    def traits(self, segment_id: str) -> dict[str, Any]:
        profile = self.state.profiles[segment_id]
        return {k: t.value for k, t in sorted(profile.traits.items()) if not t.removed}
