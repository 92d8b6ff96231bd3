"""The filter of identifiers the profiles store may hold: never a false "no"."""

from __future__ import annotations

from mainstem.identity.cache import CachedState
from mainstem.identity.graph import Event, resolve
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.rules import Rules
from mainstem.identity.seen import Seen
from mainstem.identity.sqlite import SqliteProfileStore

from .conftest import Pipeline


def test_every_key_added_is_a_maybe_and_most_others_are_a_no() -> None:
    seen = Seen()
    added = [ExternalId("anonymous_id", f"anon-{i}") for i in range(200_000)]
    seen.update(added)
    assert seen.maybe(added) == added
    assert seen.maybe([("anonymous_id", "anon-7")])  # a row read from SQLite: the same hash
    others = [ExternalId("anonymous_id", f"other-{i}") for i in range(100_000)]
    false_maybes = len(seen.maybe(others))
    assert false_maybes < 500, false_maybes  # sized for 4M keys at 10 bits each
    assert not seen.full()


def test_a_full_filter_is_refilled_bigger_with_the_claims_not_yet_committed(
    pipeline: Pipeline, profiles: SqliteProfileStore
) -> None:
    state = CachedState(profiles)
    rules = Rules()
    state.prefetch([ExternalId("user_id", "u0")])  # fills the filter from the (empty) store
    u1 = ExternalId("user_id", "u1")
    result = resolve(state, rules, Event("m1", "web", "identify", 1, (u1,)))
    assert result.created  # claimed in the cache; no commit yet
    seen = state._filled()
    seen.update(range(seen.capacity + 1))  # outgrow it
    assert seen.full()
    state.prefetch([ExternalId("user_id", "u2")])  # refills: the store, then the cache's claims
    bigger = state._filled()
    assert bigger is not seen and bigger.capacity > seen.capacity
    assert bigger.maybe([u1]) == [u1]
    again = resolve(state, rules, Event("m2", "web", "track", 2, (u1,)))
    assert again.segment_id == result.segment_id and not again.created
