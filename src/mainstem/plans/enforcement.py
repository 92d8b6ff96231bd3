"""Segment's per-source Schema Configuration (reference §1.5) and the decision it makes for one
message: keep it, omit some of its properties or traits, or block it — pure, no I/O.

Order, as Segment's: unplanned event, the event's rule (violations, then unplanned properties),
and what survives is checked against the common schema. What was omitted is recorded in
``context.protocols`` (``omitted``, ``omitted_on_violation``, ``violations``) on the delivered
message; nothing is written there when nothing was omitted (reference §9.2, our choice — the
violations are in the violations store either way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from mainstem.plans.model import TrackingPlan
from mainstem.plans.validation import CompiledRule, Violation, clean_check

Allow = Literal["allow"]
BlockOrAllow = Literal["allow", "block"]
OmitOrAllow = Literal["allow", "omit"]
Common = Literal["allow", "block", "omit"]


@dataclass(frozen=True, slots=True)
class Controls:
    """The controls of one message type; ``allow`` everywhere is Segment's default."""

    unplanned_events: BlockOrAllow = "allow"
    """Track only: ``block`` drops events with no rule."""
    unplanned_fields: OmitOrAllow = "allow"
    """``omit`` removes properties (track) or traits (identify, group) the rule does not name."""
    event_on_violation: BlockOrAllow = "allow"
    """Track only: ``block`` drops events that fail their rule."""
    fields_on_violation: OmitOrAllow = "allow"
    """``omit`` removes the properties or traits whose values fail the rule."""
    common_on_violation: Common = "allow"
    """The common schema ("advanced blocking controls")."""


@dataclass(frozen=True, slots=True)
class Enforcement:
    track: Controls = Controls()
    identify: Controls = Controls()
    group: Controls = Controls()
    forward_blocked_to: str | None = None
    """A source id: blocked events are stored there instead (never blocked a second time)."""
    forward_violations_to: str | None = None
    """A source id: each violation becomes a ``Violation Generated`` track event there."""

    def controls(self, message_type: str) -> Controls:
        if message_type == "identify":
            return self.identify
        if message_type == "group":
            return self.group
        return self.track  # page and screen follow the track controls (our choice)


@dataclass(frozen=True, slots=True)
class Finding:
    violation: Violation
    action: Literal["allowed", "blocked", "omitted"]


@dataclass(slots=True)
class Decision:
    message: dict[str, Any] | None
    """The message to store and deliver; ``None`` when blocked."""
    name: str
    """What violations aggregate on: the event (track), the name (page, screen) or the type."""
    version: int | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.message is None


class CompiledPlan:
    """A plan with every rule compiled, and rule lookup by message (reference §1.3)."""

    def __init__(self, plan: TrackingPlan) -> None:
        self.plan = plan
        self.name = plan.name
        self.track: dict[str, list[CompiledRule]] = {
            key: [CompiledRule(rule) for rule in versions]
            for key, versions in plan.track_rules().items()
        }
        self.named: dict[tuple[str, str | None], CompiledRule] = {}
        for rule in plan.rules:
            if rule.type in ("PAGE", "SCREEN"):
                self.named.setdefault((rule.type.lower(), rule.key), CompiledRule(rule))
        single = {kind: plan.single(kind) for kind in ("IDENTIFY", "GROUP", "COMMON")}
        self.identify = CompiledRule(single["IDENTIFY"]) if single["IDENTIFY"] else None
        self.group = CompiledRule(single["GROUP"]) if single["GROUP"] else None
        self.common = CompiledRule(single["COMMON"]) if single["COMMON"] else None
        rules = [
            *(rule for versions in self.track.values() for rule in versions),
            *self.named.values(),
            *(rule for rule in (self.identify, self.group) if rule is not None),
        ]
        self._clean: dict[int, Callable[[Any], bool]] = {
            id(rule): clean_check(rule, self.common) for rule in rules
        }

    def clean(self, rule: CompiledRule, message: dict[str, Any]) -> bool:
        """``message`` passes ``rule`` and the common schema with no unplanned field: nothing
        to record or change."""
        return self._clean[id(rule)](message)

    def rule_for(self, message: dict[str, Any]) -> CompiledRule | None:
        kind = message.get("type")
        if kind == "track":
            versions = self.track.get(str(message.get("event")))
            if not versions:
                return None
            wanted = _event_version(message)
            return next((r for r in versions if r.rule.version == wanted), versions[0])
        if kind == "identify":
            return self.identify
        if kind == "group":
            return self.group
        if kind in ("page", "screen"):
            name = message.get("name")
            return self.named.get((kind, name)) or self.named.get((kind, None))
        return None


def _event_version(message: dict[str, Any]) -> int | None:
    """``context.protocols.event_version``; anything but a whole number means the oldest."""
    context = message.get("context")
    protocols = context.get("protocols") if isinstance(context, dict) else None
    version = protocols.get("event_version") if isinstance(protocols, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def aggregate_name(message: dict[str, Any]) -> str:
    kind = str(message.get("type"))
    if kind == "track":
        return str(message.get("event"))
    if kind in ("page", "screen"):
        return str(message.get("name") or kind)
    return kind


def decide(
    message: dict[str, Any], plan: CompiledPlan, enforcement: Enforcement, source_id: str
) -> Decision:
    """What ``enforcement`` does with ``message`` under ``plan``; ``message`` is not changed
    (a changed message is a copy)."""
    rule = plan.rule_for(message)
    if rule is not None and plan.clean(rule, message):  # most traffic: one compiled check
        return Decision(message, aggregate_name(message), rule.rule.version)
    kind = str(message.get("type"))
    controls = enforcement.controls(kind)
    section = "traits" if kind in ("identify", "group") else "properties"
    decision = Decision(message, aggregate_name(message))
    findings = decision.findings
    omitted: list[str] = []
    omitted_on_violation: list[str] = []
    schema_violations: list[Violation] = []
    working = message
    if rule is not None:
        decision.version = rule.rule.version
    if kind == "track" and rule is None:
        name = decision.name
        unplanned = Violation(
            "Unplanned Event",
            "event",
            f'event "{name}" is not in the tracking plan',
            "not in the tracking plan — add it to the plan or fix the event name",
        )
        if controls.unplanned_events == "block":
            findings.append(Finding(unplanned, "blocked"))
            decision.message = None
            return decision
        findings.append(Finding(unplanned, "allowed"))
    if rule is not None:
        found = rule.check(message)
        schema_violations.extend(found)
        if found and kind == "track" and controls.event_on_violation == "block":
            findings.extend(Finding(v, "blocked") for v in found)
            decision.message = None
            return decision
        working, removed = _omit(working, section, found, controls.fields_on_violation)
        omitted_on_violation.extend(removed)
        findings.extend(
            Finding(v, "omitted" if _top_name(v.field, section) in removed else "allowed")
            for v in found
        )
        if rule.planned is not None:
            fields = working.get(section)
            extra = [k for k in fields if k not in rule.planned] if isinstance(fields, dict) else []
            omit = controls.unplanned_fields == "omit"
            for key in extra:
                findings.append(
                    Finding(
                        Violation(
                            "Unplanned Property",
                            f"{section}.{key}",
                            f"{section}.{key} is not in the tracking plan",
                            "not in the tracking plan — add it to the rule or stop sending it",
                        ),
                        "omitted" if omit else "allowed",
                    )
                )
            if omit and extra:
                working = _without(working, section, extra)
                omitted.extend(extra)
    if plan.common is not None:
        found = plan.common.check(working)
        schema_violations.extend(found)
        if found and controls.common_on_violation == "block":
            findings.extend(Finding(v, "blocked") for v in found)
            decision.message = None
            return decision
        mode: OmitOrAllow = "omit" if controls.common_on_violation == "omit" else "allow"
        working, removed = _omit(working, section, found, mode)
        omitted_on_violation.extend(r for r in removed if r not in omitted_on_violation)
        findings.extend(
            Finding(v, "omitted" if _top_name(v.field, section) in removed else "allowed")
            for v in found
        )
    if omitted or omitted_on_violation:
        working = _annotate(working, source_id, omitted, omitted_on_violation, schema_violations)
    decision.message = working
    return decision


def _top_name(field: str, section: str) -> str | None:
    prefix = section + "."
    if not field.startswith(prefix):
        return None
    return field[len(prefix) :].split(".", 1)[0]


def _omit(
    message: dict[str, Any], section: str, found: list[Violation], mode: OmitOrAllow
) -> tuple[dict[str, Any], list[str]]:
    """Remove the top-level properties/traits whose values violate (a missing required one
    cannot be omitted)."""
    if mode != "omit" or not found:
        return message, []
    fields = message.get(section)
    if not isinstance(fields, dict):
        return message, []
    names: list[str] = []
    for violation in found:
        name = _top_name(violation.field, section)
        if name is not None and name in fields and name not in names:
            names.append(name)
    return (_without(message, section, names), names) if names else (message, [])


def _without(message: dict[str, Any], section: str, names: list[str]) -> dict[str, Any]:
    fields = {k: v for k, v in message[section].items() if k not in names}
    return {**message, section: fields}


def _annotate(
    message: dict[str, Any],
    source_id: str,
    omitted: list[str],
    omitted_on_violation: list[str],
    violations: list[Violation],
) -> dict[str, Any]:
    context = message.get("context")
    context = dict(context) if isinstance(context, dict) else {}
    existing = context.get("protocols")
    protocols = dict(existing) if isinstance(existing, dict) else {}
    protocols.update(
        sourceId=source_id,
        omitted=omitted,
        omitted_on_violation=omitted_on_violation,
        violations=[v.to_json() for v in violations],
    )
    context["protocols"] = protocols
    return {**message, "context": context}
