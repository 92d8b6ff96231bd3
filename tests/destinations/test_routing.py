"""Routing decisions, table-driven: source, type, consent, integrations, filters, with reasons."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mainstem.destinations import fql
from mainstem.destinations.routing import route
from mainstem.destinations.spec import Action, Destination, Endpoint, Filter


def dest(**changes: Any) -> Destination:
    base: dict[str, Any] = {"id": "hooks", "type": "webhook", "name": "Webhooks"}
    base["endpoint"] = Endpoint("http://127.0.0.1:9")
    return Destination(**(base | changes))


def flt(condition: str, *actions: Action) -> Filter:
    return Filter(condition, fql.parse(condition), actions)


def track(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "properties": {"total": 30, "email": "a@b.c"},
        "context": {},
    }
    return message | changes


def consent(**preferences: Any) -> dict[str, Any]:
    return {"consent": {"categoryPreferences": preferences}}


ADS = dest(consent_categories=("Advertising", "Analytics"))

CASES: list[tuple[str, dict[str, Any], str, Destination, str]] = [
    ("plain", track(), "web", dest(), "delivered"),
    ("disabled", track(), "web", dest(enabled=False), "destination 'hooks' is disabled"),
    (
        "other source",
        track(),
        "ios",
        dest(sources=("web",)),
        "source 'ios' is not connected to 'hooks'",
    ),
    (
        "type not selected",
        {"type": "alias", "userId": "u1", "previousId": "a"},
        "web",
        dest(types=("track", "identify")),
        "type 'alias' is not sent to 'hooks' (types: track, identify)",
    ),
    ("no consent object: all", track(), "web", ADS, "delivered"),
    ("consent {}: no enforcement", track(context={"consent": {}}), "web", ADS, "delivered"),
    (
        "empty categoryPreferences: mapped destinations get nothing",
        track(context=consent()),
        "web",
        ADS,
        "consent: categoryPreferences has no 'Advertising' (a missing category counts as false)",
    ),
    (
        "empty categoryPreferences: unmapped still get it",
        track(context=consent()),
        "web",
        dest(),
        "delivered",
    ),
    (
        "all mapped categories must be true",
        track(context=consent(Advertising=True, Analytics=False)),
        "web",
        ADS,
        "consent: category 'Analytics' is false",
    ),
    (
        "every mapped category true",
        track(context=consent(Advertising=True, Analytics=True, Other=False)),
        "web",
        ADS,
        "delivered",
    ),
    (
        "the consent event always goes",
        track(event="Segment Consent Preference Updated", context=consent(Advertising=False)),
        "web",
        ADS,
        "delivered",
    ),
    (
        "integrations true cannot override consent",
        track(context=consent(Advertising=False), integrations={"Webhooks": True}),
        "web",
        ADS,
        "consent: category 'Advertising' is false",
    ),
    (
        "integrations names it false",
        track(integrations={"Webhooks": False}),
        "web",
        dest(),
        "integrations: 'Webhooks' is false",
    ),
    (
        "integrations names are case-sensitive",
        track(integrations={"webhooks": False}),
        "web",
        dest(),
        "delivered",
    ),
    (
        "All false, not named",
        track(integrations={"All": False, "Mixpanel": True}),
        "web",
        dest(),
        "integrations: All is false and neither 'Webhooks' nor 'hooks' is named",
    ),
    (
        "All false, named with options",
        track(integrations={"All": False, "Webhooks": {"tag": 1}}),
        "web",
        dest(),
        "delivered",
    ),
    (
        "All false, named by id",
        track(integrations={"All": False, "hooks": True}),
        "web",
        dest(),
        "delivered",
    ),
    (
        "filter drops",
        track(),
        "web",
        dest(filters=(flt("event = 'Order Completed'", Action("drop")),)),
        "filter 1 (event = 'Order Completed'): dropped",
    ),
    (
        "filter does not match",
        track(),
        "web",
        dest(filters=(flt("properties.total > 100", Action("drop")),)),
        "delivered",
    ),
    (
        "only send X = drop when not X",
        track(event="Page Scrolled"),
        "web",
        dest(filters=(flt("!(event in ['Order Completed', 'Signed Up'])", Action("drop")),)),
        "filter 1 (!(event in ['Order Completed', 'Signed Up'])): dropped",
    ),
    (
        "sample 0 drops all",
        track(),
        "web",
        dest(filters=(flt("all", Action("sample", percent=0.0)),)),
        "filter 1 (all): sampled out (percent 0)",
    ),
    (
        "sample before drop",
        track(),
        "web",
        dest(filters=(flt("all", Action("drop"), Action("sample", percent=0.0)),)),
        "filter 1 (all): sampled out (percent 0)",
    ),
]


@pytest.mark.parametrize(
    ("message", "source", "destination", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decision_and_reason(
    message: dict[str, Any], source: str, destination: Destination, reason: str
) -> None:
    decision = route(message, source, destination, rng=random.Random(1))
    assert decision.reason == reason
    assert decision.deliver is (reason == "delivered")
    assert (decision.message is not None) is decision.deliver


def test_replay_ignores_integrations_and_disabled_but_keeps_consent_and_filters() -> None:
    off = dest(enabled=False, consent_categories=("Ads",))
    blocked = track(integrations={"All": False})
    assert route(blocked, "web", off, replay=True).reason == "delivered"
    denied = track(context=consent(Ads=False))
    assert route(denied, "web", off, replay=True).reason == "consent: category 'Ads' is false"


def test_drop_and_allow_properties_reach_into_arrays_and_the_top_level() -> None:
    destination = dest(
        filters=(
            flt(
                "all",
                Action("allow_properties", fields={"properties": ("total", "products")}),
                Action(
                    "drop_properties", fields={"": ("userId",), "properties.products": ("sku",)}
                ),
            ),
        )
    )
    message = track(
        properties={"total": 3, "email": "x", "products": [{"sku": 1, "p": 2}, {"sku": 3}]}
    )
    decision = route(message, "web", destination)
    assert decision.message == {
        "type": "track",
        "event": "Order Completed",
        "properties": {"total": 3, "products": [{"p": 2}, {}]},
        "context": {},
    }
    assert message["properties"]["email"] == "x"  # the stored message is left alone


def test_deterministic_sampling_by_path_keeps_the_same_users() -> None:
    destination = dest(filters=(flt("all", Action("sample", percent=0.5, path="userId")),))
    kept = {
        user
        for user in (f"user-{n}" for n in range(400))
        if route(track(userId=user), "web", destination).deliver
    }
    again = {
        user
        for user in (f"user-{n}" for n in range(400))
        if route(track(userId=user), "web", destination).deliver
    }
    assert kept == again
    assert 140 < len(kept) < 260


def test_a_filter_that_fails_drops_the_event() -> None:
    broken = Filter("all", fql.parse("all"), (Action("sample", percent=0.5, path="a b"),))
    decision = route(track(), "web", dest(filters=(broken,)))
    assert decision.deliver is False
    assert decision.reason == (
        "filter 1 (all): evaluation failed (unexpected 'b' at column 3); dropped"
    )
