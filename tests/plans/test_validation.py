"""Violations explained piece by piece (the fast way) are exactly those of the whole rule."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mainstem.plans import yaml_format
from mainstem.plans.validation import CompiledRule

PLAN = yaml_format.loads(
    """\
plan: web
events:
  Order Completed:
    properties:
      order_id: {type: string, required: true, minLength: 2}
      total: {type: number, required: true, minimum: 0}
      currency: {type: string, enum: [USD, EUR]}
      placed_at: date-time
      products:
        type: array
        items:
          type: object
          properties:
            sku: {type: string, required: true, pattern: "^s"}
"""
)
RULE = CompiledRule(PLAN.rules[0])
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(["", "USD", "GBP", "s1", "x", "2024-05-01T10:00:00Z", "nope"]),
    st.lists(st.dictionaries(st.sampled_from(["sku", "qty"]), st.sampled_from(["s1", "x", 1]))),
)
properties = st.dictionaries(
    st.sampled_from(["order_id", "total", "currency", "placed_at", "products", "extra"]), values
)


@settings(max_examples=300, deadline=None)
@given(properties=st.one_of(properties, values))
def test_pieces_and_whole_agree(properties: Any) -> None:
    message = {"type": "track", "event": "Order Completed", "properties": properties}
    whole = sorted(RULE._whole.explain(message), key=lambda v: (v.field, v.type))
    assert RULE.check(message) == sorted(set(whole), key=lambda v: (v.field, v.type))
