"""The tracking plans of a workspace, compiled, and what the processor asks of them: pure.

:class:`SourcePlan` is plain data (it crosses to the processor process by pickling); the
compiled :class:`Governance` is built where it is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from mainstem.plans.enforcement import CompiledPlan, Decision, Enforcement, Finding, decide
from mainstem.plans.model import TrackingPlan

FORWARDED = "forwardedFromProject"
"""Set on messages forwarded from another source; they are never enforced a second time."""


class _Source(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def tracking_plan(self) -> TrackingPlan | None: ...
    @property
    def enforcement(self) -> Enforcement: ...


@dataclass(frozen=True)
class SourcePlan:
    source_id: str
    source_name: str
    plan: TrackingPlan
    enforcement: Enforcement


def source_plans(sources: Iterable[_Source]) -> tuple[SourcePlan, ...]:
    """The sources that have a tracking plan."""
    return tuple(
        SourcePlan(s.id, s.name, s.tracking_plan, s.enforcement)
        for s in sources
        if s.tracking_plan is not None
    )


class Governance:
    def __init__(self, plans: Iterable[SourcePlan]) -> None:
        self.sources = {spec.source_id: spec for spec in plans}
        compiled: dict[int, CompiledPlan] = {}  # one compilation per plan shared by sources
        self._compiled = {
            source_id: compiled.setdefault(id(spec.plan), CompiledPlan(spec.plan))
            for source_id, spec in self.sources.items()
        }

    def decide(self, source_id: str, message: dict[str, Any]) -> Decision | None:
        """``None`` when the source has no plan or the message was forwarded to it."""
        plan = self._compiled.get(source_id)
        if plan is None or FORWARDED in message:
            return None
        return decide(message, plan, self.sources[source_id].enforcement, source_id)


def violation_event(
    spec: SourcePlan, message: dict[str, Any], finding: Finding, index: int
) -> dict[str, Any]:
    """The ``Violation Generated`` track call Segment forwards for one violation (§1.6)."""
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    assert isinstance(context, dict)
    violation = finding.violation
    return {
        "type": "track",
        "event": "Violation Generated",
        "userId": "schema-violations",
        "messageId": f"sch-{message.get('messageId')}-{index}",
        "timestamp": message.get("receivedAt"),
        "receivedAt": message.get("receivedAt"),
        "context": {k: context[k] for k in ("app", "library") if k in context},
        "properties": {
            "eventName": message.get("event") or message.get("name") or message.get("type"),
            "eventType": message.get("type"),
            "eventMessageID": message.get("messageId"),
            "eventSentAt": message.get("sentAt"),
            "eventTimestamp": message.get("timestamp"),
            "appVersion": (context.get("app") or {}).get("version")
            if isinstance(context.get("app"), dict)
            else None,
            "sourceID": spec.source_id,
            "sourceName": spec.source_name,
            "sourceSlug": spec.source_id,
            "trackingPlanID": spec.plan.name,
            "trackingPlanName": spec.plan.name,
            "violationType": violation.type,
            "violationField": violation.field,
            "violationDescription": violation.description,
        },
        "integrations": {},
        FORWARDED: spec.source_id,
    }


def forwarded(message: dict[str, Any], source_id: str) -> dict[str, Any]:
    """A blocked message as forwarded to another source: unchanged but for the marker."""
    return {**message, FORWARDED: source_id}
