"""Typed clients from a tracking plan, as Segment's Typewriter makes them (reference §1.8): a
Python module (:mod:`.python`) or a TypeScript module for @segment/analytics-node
(:mod:`.typescript`), one function per track event. Pure: plan in, source text out."""

from mainstem.plans.codegen.python import python
from mainstem.plans.codegen.typescript import typescript
from mainstem.plans.model import TrackingPlan
from mainstem.plans.words import snake


def module_name(plan: TrackingPlan) -> str:
    """The file name (without suffix) a generated client gets in a directory: ``web_analytics``."""
    return f"{snake(plan.name)}_analytics"


__all__ = ["module_name", "python", "typescript"]
