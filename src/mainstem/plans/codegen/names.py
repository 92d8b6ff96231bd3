"""Identifiers for generated code, from event and property names: pure."""

from __future__ import annotations

import re

from mainstem.plans.model import Rule, TrackingPlan


def latest_track_rules(plan: TrackingPlan) -> list[Rule]:
    """Like Typewriter, only track rules, each at its highest version, by event name."""
    return [versions[-1] for _, versions in sorted(plan.track_rules().items())]


def words(text: str) -> list[str]:
    return [w for w in re.split(r"[^0-9A-Za-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", text)) if w]


def pascal(text: str) -> str:
    """``Order Completed`` → ``OrderCompleted`` (``_`` in front of a leading digit)."""
    name = "".join(w[:1].upper() + w[1:] for w in words(text)) or "Event"
    return f"_{name}" if name[0].isdigit() else name


def camel(text: str) -> str:
    """``Order Completed`` → ``orderCompleted``."""
    name = pascal(text).lstrip("_")
    return name[:1].lower() + name[1:]


def snake(text: str) -> str:
    """``Order Completed`` → ``order_completed``."""
    return "_".join(w.lower() for w in words(text)) or "event"
