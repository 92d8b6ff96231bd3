"""Drafting a tracking plan from collected messages: pure.

Each property (trait) gets the JSON types seen for it (``integer`` widened to ``number`` when
both occur, ``null`` kept as an allowed type), nested objects and arrays of objects are described
down to :data:`MAX_DEPTH`, and a property is ``required`` when every message of the event had it.
The draft is a starting point to review, not a verdict: enums and patterns are left to people.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mainstem.plans.model import Rule, TrackingPlan, envelope
from mainstem.plans.validation import json_type

MAX_DEPTH = 4
MAX_PROPERTIES = 200
"""Properties per object beyond which the rest are left unplanned (likely ids used as keys)."""


@dataclass
class _Shape:
    """What was seen at one place in the messages."""

    seen: int = 0
    types: set[str] = field(default_factory=set)
    children: dict[str, _Shape] = field(default_factory=dict)
    objects: int = 0
    """How many of the values here were objects (for ``required`` of the children)."""
    items: _Shape | None = None

    def add(self, value: Any, depth: int) -> None:
        self.seen += 1
        kind = json_type(value)
        self.types.add(kind)
        if depth >= MAX_DEPTH:
            return
        if kind == "object":
            self.objects += 1
            for key, child in value.items():
                if key in self.children or len(self.children) < MAX_PROPERTIES:
                    self.children.setdefault(key, _Shape()).add(child, depth + 1)
        elif kind == "array":
            for item in value:
                if self.items is None:
                    self.items = _Shape()
                self.items.add(item, depth + 1)

    def schema(self) -> dict[str, Any]:
        types = set(self.types)
        if {"integer", "number"} <= types:
            types.discard("integer")
        ordered = [t for t in ("string", "number", "integer", "boolean", "object", "array",
                               "null") if t in types]  # fmt: skip
        result: dict[str, Any] = {}
        if ordered:
            result["type"] = ordered[0] if len(ordered) == 1 else ordered
        if self.children:
            described = self.object_schema()
            result["properties"] = described["properties"]
            if "required" in described:
                result["required"] = described["required"]
        if self.items is not None and "array" in types:
            result["items"] = self.items.schema()
        return result

    def object_schema(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "type": "object",
            "properties": {name: shape.schema() for name, shape in sorted(self.children.items())},
        }
        required = [name for name, shape in sorted(self.children.items())
                    if shape.seen == self.objects]  # fmt: skip
        if required:
            result["required"] = required
        return result


def infer(messages: Iterable[dict[str, Any]], name: str) -> TrackingPlan:
    """A draft plan describing ``messages``: one rule per track event, page and screen name,
    and identify and group rules for their traits."""
    shapes: dict[tuple[str, str | None], _Shape] = {}
    for message in messages:
        kind = message.get("type")
        key: str | None
        if kind == "track":
            key, section = str(message.get("event")), "properties"
        elif kind in ("page", "screen"):
            if not message.get("name"):
                continue
            key, section = str(message["name"]), "properties"
        elif kind in ("identify", "group"):
            key, section = None, "traits"
        else:
            continue
        values = message.get(section)
        shape = shapes.setdefault((str(kind), key), _Shape())
        shape.add(values if isinstance(values, dict) else {}, 0)
    rules = []
    order = ("track", "page", "screen", "identify", "group")
    for (kind, key), shape in sorted(shapes.items(), key=lambda i: (order.index(i[0][0]), i[0][1])):
        section = "traits" if kind in ("identify", "group") else "properties"
        schema = envelope(section, shape.object_schema())
        rules.append(Rule(kind.upper(), key, 1, schema))  # type: ignore[arg-type]
    return TrackingPlan(name=name, rules=tuple(rules), description="Drafted from collected events")
