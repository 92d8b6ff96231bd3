"""Whether one stored event goes to one destination, in what shape, and why (pure).

The order mirrors Segment (segment-governance.md §2.2, §7.2, §8.1; segment-ingestion.md §2.7,
§2.8): the destination must be enabled (replays may override) and connected to the source; it
must support the message type (checked before filters); consent, then the ``integrations``
object; then the destination filters in Segment's fixed order Sample → Drop → Drop Properties →
Allow Properties. Any error while evaluating a filter drops the event (fail closed, to protect
PII). Last, a vendor integration may refuse a message it cannot send (an Amplitude id that is
too short, a HubSpot call without an email). Every :class:`Decision` carries a reason an
operator can read.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mainstem.destinations import fql
from mainstem.destinations.integrations import INTEGRATIONS
from mainstem.destinations.spec import Action, Destination

CONSENT_EVENT = "Segment Consent Preference Updated"
"""Delivered regardless of consent (segment-governance.md §7.3)."""


@dataclass(frozen=True, slots=True)
class Decision:
    deliver: bool
    reason: str
    message: dict[str, Any] | None = None
    """The message to send (filters may have removed properties); ``None`` when not delivered."""
    rewritten: bool = False
    """Filters removed properties: the message is no longer the stored one."""
    step: str = ""
    """Which step stopped it, for the metrics: ``disabled``, ``source``, ``type``,
    ``consent``, ``integrations``, ``filter``, ``unsupported`` or ``unreadable``."""


def route(
    message: Mapping[str, Any],
    source_id: str,
    destination: Destination,
    *,
    replay: bool = False,
    rng: random.Random | None = None,
) -> Decision:
    """Decide for one event and one destination.

    Args:
        message: the stored, normalized Segment message (camelCase keys).
        source_id: the source it arrived on.
        destination: the configured destination.
        replay: a replay sends to this destination even when it is disabled, and ignores the
            ``integrations`` object (Segment replaces it with ``{All: false, <dest>: true}``);
            consent and filters still apply (§8.5).
        rng: for sampling without a ``path``; a fresh ``random.Random()`` by default.
    """
    if not destination.enabled and not replay:
        return Decision(False, f"destination {destination.id!r} is disabled", step="disabled")
    if destination.sources is not None and source_id not in destination.sources:
        return Decision(
            False, f"source {source_id!r} is not connected to {destination.id!r}", step="source"
        )
    message_type = message.get("type")
    if message_type not in destination.types:
        return Decision(
            False,
            f"type {message_type!r} is not sent to {destination.id!r} "
            f"(types: {', '.join(destination.types)})",
            step="type",
        )
    denied = consent_denial(message, destination)
    if denied is not None:
        return Decision(False, denied, step="consent")
    if not replay:
        blocked = integrations_block(message, destination)
        if blocked is not None:
            return Decision(False, blocked, step="integrations")
    decision = apply_filters(dict(message), destination, rng or random.Random())
    integration = INTEGRATIONS.get(destination.type)
    if decision.message is not None and integration is not None:
        # after the filters: a drop_properties filter may have removed what the vendor needs
        unsendable = integration.skip(decision.message, destination.endpoint.options)
        if unsendable is not None:
            return Decision(False, unsendable, step="unsupported")
    return decision


def consent_denial(message: Mapping[str, Any], destination: Destination) -> str | None:
    """Why consent stops the event, or ``None`` when it may go (§7.2)."""
    if not destination.consent_categories:
        return None  # mapped to no category: always eligible
    if message.get("type") == "track" and message.get("event") == CONSENT_EVENT:
        return None
    context = message.get("context")
    consent = context.get("consent") if isinstance(context, Mapping) else None
    if not isinstance(consent, Mapping) or "categoryPreferences" not in consent:
        return None  # no consent object (or `consent: {}`): no enforcement
    preferences = consent.get("categoryPreferences")
    if not isinstance(preferences, Mapping):
        preferences = {}
    for category in destination.consent_categories:
        value = preferences.get(category)
        if value is True:
            continue
        if category not in preferences:
            return (
                f"consent: categoryPreferences has no {category!r} (a missing category counts "
                "as false)"
            )
        return f"consent: category {category!r} is {json.dumps(value)}"
    return None


def integrations_block(message: Mapping[str, Any], destination: Destination) -> str | None:
    """Why the ``integrations`` object stops the event, or ``None``.

    Keys are case-sensitive display names; the destination answers to its ``name`` and its
    ``id``. An explicit value wins over ``All``; an object counts as enabled (§2.8).
    """
    integrations = message.get("integrations")
    if not integrations or not isinstance(integrations, Mapping):
        return None  # usually `{}` (the gateway's default): nothing to look up
    for key in (destination.name, destination.id):
        if key in integrations:
            if integrations[key] is False:
                return f"integrations: {key!r} is false"
            return None
    if integrations.get("All", True) is False:
        return (
            f"integrations: All is false and neither {destination.name!r} nor "
            f"{destination.id!r} is named"
        )
    return None


def apply_filters(
    message: dict[str, Any], destination: Destination, rng: random.Random
) -> Decision:
    """The destination filters, each in Segment's fixed action order (§2.2)."""
    rewritten = False
    for number, item in enumerate(destination.filters, start=1):
        where = f"filter {number} ({item.condition})"
        try:
            if not fql.matches(item.expr, message):
                continue
            actions = sorted(item.actions, key=lambda action: _ORDER[action.type])
            for action in actions:
                if action.type == "sample" and not _sampled(action, message, rng):
                    return Decision(
                        False, f"{where}: sampled out (percent {action.percent:g})", step="filter"
                    )
                if action.type == "drop":
                    return Decision(False, f"{where}: dropped", step="filter")
                if action.type in {"drop_properties", "allow_properties"}:
                    message = _properties(action, message)
                    rewritten = True
        except Exception as exc:  # fail closed: a filter that cannot run must not leak PII
            return Decision(False, f"{where}: evaluation failed ({exc}); dropped", step="filter")
    return Decision(True, "delivered", message, rewritten)


_ORDER = {"sample": 0, "drop": 1, "drop_properties": 2, "allow_properties": 3}


def _sampled(action: Action, message: Mapping[str, Any], rng: random.Random) -> bool:
    if action.percent <= 0:
        return False
    if action.percent >= 1:
        return True
    if action.path is None:
        return rng.random() < action.percent
    # deterministic per value: JSON.stringify, MD5, first 8 bytes as a uniform float (§2.2)
    picked = fql.value(fql.parse(action.path), message)
    raw = json.dumps(picked, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    digest = hashlib.md5(raw, usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < action.percent


def _properties(action: Action, message: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(message)
    for path, keys in action.fields.items():
        for target in _objects(result, path):
            if action.type == "drop_properties":
                for key in keys:
                    target.pop(key, None)
            else:
                for key in [key for key in target if key not in keys]:
                    del target[key]
    return result


def _objects(message: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """The objects at ``path`` (``""`` is the top level); arrays apply to every element."""
    current: list[Any] = [message]
    for part in path.split(".") if path else []:
        following: list[Any] = []
        for item in current:
            value = item.get(part) if isinstance(item, dict) else None
            following.extend(value if isinstance(value, list) else [value])
        current = following
    return [item for item in current if isinstance(item, dict)]
