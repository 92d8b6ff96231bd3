"""The identity stage over the real event store and a real profiles store (each backend)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from mainstem.errors import RetryLater
from mainstem.identity.cache import Changes
from mainstem.identity.graph import VALUE_LIMIT, Drop, Profile
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.resolver import Resolver
from mainstem.identity.store import PlacedEvent, ProfileStore, Violation

from .conftest import Pipeline, Stores
from .helpers import message

STORY: list[dict[str, Any]] = [
    message("page", 1, 0, anonymousId="phone"),
    message("identify", 2, 1, anonymousId="phone", userId="u1", traits={"email": "ann@x.com"}),
    message("page", 3, 2, anonymousId="laptop"),
    message("track", 4, 3, anonymousId="laptop", userId="u1", event="Bought"),
    message("identify", 5, 4, userId="u2", traits={"email": "ann@x.com", "name": "Bo"}),
    message("group", 6, 5, userId="u1", groupId="g1", traits={"name": "Initech"}),
]


def _graph(profiles: ProfileStore) -> dict[str, list[str]]:
    """Live user profiles, keyed by their user_id, with their identifiers."""
    graph = {}
    for type, value in [("user_id", "u1"), ("user_id", "u2")]:
        segment_id = profiles.owner(ExternalId(type, value))
        assert segment_id is not None
        profile = profiles.load(segment_id)
        assert profile is not None
        graph[value] = sorted(str(key) for key in profile.identifiers)
    return graph


EXPECTED = {
    "u1": ["anonymous_id:laptop", "anonymous_id:phone", "email:ann@x.com", "user_id:u1"],
    "u2": ["user_id:u2"],
}


def _profile(profiles: ProfileStore, id: ExternalId) -> Profile:
    segment_id = profiles.owner(id)
    assert segment_id is not None
    profile = profiles.load(segment_id)
    assert profile is not None
    return profile


def test_the_resolver_builds_and_persists_the_graph(
    pipeline: Pipeline, profiles: ProfileStore
) -> None:
    pipeline.send(STORY)
    resolver = Resolver(pipeline.store, profiles)
    assert resolver.sync() == 6
    assert _graph(profiles) == EXPECTED
    u1 = _profile(profiles, ExternalId("user_id", "u1"))
    u2 = _profile(profiles, ExternalId("user_id", "u2"))
    account = _profile(profiles, ExternalId("group_id", "g1"))
    assert (u1.merges, u1.first_message_id, u1.last_message_id) == (1, "m1", "m6")
    assert {k: t.value for k, t in u2.traits.items()} == {"email": "ann@x.com", "name": "Bo"}
    assert {k: t.value for k, t in account.traits.items()} == {"name": "Initech"}
    assert (u1.links, account.links) == ({account.segment_id}, {u1.segment_id})
    [merge] = profiles.merges(profiles.members(u1.segment_id))
    assert (merge.canonical_segment_id, merge.message_id, merge.via, merge.rule) == (
        u1.segment_id,
        "m4",
        ExternalId("anonymous_id", "laptop"),
        "anonymous_id: 5 ever",
    )
    assert profiles.canonical(merge.segment_id) == u1.segment_id
    assert sorted(profiles.members(u1.segment_id)) == sorted([u1.segment_id, merge.segment_id])
    placed = profiles.events(profiles.members(u1.segment_id), limit=10)
    assert [(e.message_id, e.type) for e in placed] == [
        ("m6", "group"),
        ("m4", "track"),
        ("m3", "page"),
        ("m2", "identify"),
        ("m1", "page"),
    ]
    assert [e.segment_id for e in placed if e.message_id == "m3"] == [merge.segment_id]
    assert profiles.violations([u2.segment_id]) == [
        Violation(
            5,
            "m5",
            u2.segment_id,
            Drop(ExternalId("email", "ann@x.com"), VALUE_LIMIT, "user_id: 1 ever"),
        )
    ]
    assert profiles.count() == {"accounts": 1, "users": 2}
    assert profiles.position() == 6
    assert resolver.run_once().events == 0


def test_a_restarted_resolver_continues_from_the_stored_graph(
    pipeline: Pipeline, profiles: ProfileStore
) -> None:
    pipeline.send(STORY[:3])
    assert Resolver(pipeline.store, profiles).sync() == 3
    pipeline.send(STORY[3:])
    assert Resolver(pipeline.store, profiles, batch_events=2).sync() == 3
    assert _graph(profiles) == EXPECTED
    u1 = _profile(profiles, ExternalId("user_id", "u1"))
    assert {k: t.value for k, t in u1.traits.items()} == {"email": "ann@x.com"}
    assert profiles.position() == 6


class FailingCommit:
    """A real profiles store whose next commit fails after writing, like a crash before
    COMMIT (the transaction rolls back)."""

    def __init__(self, store: ProfileStore, *, after: int = 0) -> None:
        self.store = store
        self.fail = True
        self.after = after
        """Commits that succeed before the one that fails."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def commit(self, changes: Changes, position: int, expected: int) -> None:
        if self.fail and self.after == 0:
            self.fail = False
            raise RetryLater("disk went away")
        self.after -= 1
        self.store.commit(changes, position, expected)


def test_a_failed_commit_is_replayed_exactly_once(
    pipeline: Pipeline, profiles: ProfileStore
) -> None:
    pipeline.send(STORY)
    flaky = FailingCommit(profiles)
    resolver = Resolver(pipeline.store, flaky)  # type: ignore[arg-type]
    with pytest.raises(RetryLater, match="disk went away"):
        resolver.run_once()
    assert profiles.position() == 0
    assert profiles.count() == {}
    assert resolver.sync() == 6
    _assert_the_story_resolved_once(profiles)


def _assert_the_story_resolved_once(profiles: ProfileStore) -> None:
    assert _graph(profiles) == EXPECTED
    u1 = _profile(profiles, ExternalId("user_id", "u1"))
    assert u1.merges == 1
    assert len(profiles.events(profiles.members(u1.segment_id), limit=100)) == 5
    assert {k: t.value for k, t in u1.traits.items()} == {"email": "ann@x.com"}
    u2 = _profile(profiles, ExternalId("user_id", "u2"))
    assert {k: t.value for k, t in u2.traits.items()} == {"email": "ann@x.com", "name": "Bo"}
    account = _profile(profiles, ExternalId("group_id", "g1"))
    assert (u1.links, account.links) == ({account.segment_id}, {u1.segment_id})
    assert profiles.count() == {"accounts": 1, "users": 2}


def test_a_commit_failing_mid_sync_keeps_the_batches_before_it_and_replays_the_rest(
    pipeline: Pipeline, profiles: ProfileStore
) -> None:
    # sync() commits batch n on a writer thread while it resolves batch n + 1: the second
    # commit fails after the third batch was resolved against the cache.
    pipeline.send(STORY)
    flaky = FailingCommit(profiles, after=1)
    resolver = Resolver(pipeline.store, flaky, batch_events=2)  # type: ignore[arg-type]
    with pytest.raises(RetryLater, match="disk went away"):
        resolver.sync()
    assert profiles.position() == 2
    assert resolver.sync() == 4
    _assert_the_story_resolved_once(profiles)


class SlowCommit:
    """A real profiles store whose commits take a while, so the resolver has resolved the next
    batch before a commit is done."""

    def __init__(self, store: ProfileStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def commit(self, changes: Changes, position: int, expected: int) -> None:
        time.sleep(0.1)
        self.store.commit(changes, position, expected)


@pytest.mark.parametrize("max_profiles", [0, 1, 2])
def test_a_pipelined_sync_that_empties_its_full_cache_resolves_the_same_graph(
    pipeline: Pipeline, profiles: ProfileStore, max_profiles: int
) -> None:
    # The cache is emptied whenever it outgrows its bound, but never while it holds a batch
    # not committed yet: the store would not know that batch's identifiers yet.
    pipeline.send(STORY)
    slow = SlowCommit(profiles)
    resolver = Resolver(pipeline.store, slow, batch_events=1)  # type: ignore[arg-type]
    resolver.state.max_profiles = max_profiles
    assert resolver.sync() == 6
    _assert_the_story_resolved_once(profiles)


def test_sync_stops_after_the_batch_in_hand_when_told_to(
    pipeline: Pipeline, profiles: ProfileStore
) -> None:
    pipeline.send(STORY)
    resolver = Resolver(pipeline.store, profiles, batch_events=2)
    stop = threading.Event()
    stop.set()
    assert resolver.sync(stop) == 2
    assert (profiles.position(), resolver.position) == (2, 2)
    assert resolver.sync() == 4
    assert _graph(profiles) == EXPECTED


def test_a_second_resolver_with_a_stale_position_writes_nothing(
    pipeline: Pipeline, profiles: ProfileStore, make_store: Stores
) -> None:
    pipeline.send(STORY)
    with pytest.raises(RetryLater) as caught:
        profiles.commit(Changes(), 6, 3)
    assert caught.value.message == (
        f"{make_store.where}: the resolver position is 0, expected 3 — another resolver is "
        f"running on {make_store.scope}"
    )
    assert profiles.position() == 0


def test_events_without_identifiers_are_not_placed(
    pipeline: Pipeline, profiles: ProfileStore
) -> None:
    pipeline.send([message("track", 1, anonymousId="null", event="X")])
    assert Resolver(pipeline.store, profiles).sync() == 1
    assert profiles.count() == {}
    assert profiles.position() == 1
    assert PlacedEvent(1, "x", "m1", "track", 0).seq == 1


def test_a_deleted_profile_is_gone_and_a_running_resolver_does_not_bring_it_back(
    pipeline: Pipeline, profiles: ProfileStore, make_store: Stores
) -> None:
    pipeline.send(STORY)
    resolver = Resolver(pipeline.store, profiles)
    assert resolver.sync() == 6
    u1 = _profile(profiles, ExternalId("user_id", "u1"))
    account = _profile(profiles, ExternalId("group_id", "g1"))
    members = profiles.members(u1.segment_id)
    other = make_store()  # as the CLI opens it
    assert other.delete(u1.segment_id) == 2
    other.close()
    assert profiles.owner(ExternalId("user_id", "u1")) is None
    assert profiles.owner(ExternalId("anonymous_id", "laptop")) is None
    assert profiles.load(u1.segment_id) is None
    assert profiles.events(members, limit=10) == []
    assert profiles.merges(members) == []
    assert _profile(profiles, ExternalId("group_id", "g1")).links == set()
    assert profiles.generation() == 1
    # The resolver cached u1; a new event with u1 must start a new profile, not revive it.
    pipeline.send([message("track", 7, 9, userId="u1", event="Back")])
    assert resolver.sync() == 1
    fresh = _profile(profiles, ExternalId("user_id", "u1"))
    assert fresh.segment_id != u1.segment_id
    assert sorted(str(k) for k in fresh.identifiers) == ["user_id:u1"]
    assert profiles.load(account.segment_id) is not None


def test_a_delete_during_a_batch_makes_the_batch_replay(
    pipeline: Pipeline, profiles: ProfileStore, make_store: Stores
) -> None:
    pipeline.send(STORY[:2])
    resolver = Resolver(pipeline.store, profiles)
    resolver.sync()
    u1 = _profile(profiles, ExternalId("user_id", "u1"))
    pipeline.send([message("identify", 8, 9, userId="u1", traits={"plan": "pro"})])
    changes = resolver.state.take()  # resolve a batch by hand, then delete before committing
    assert changes.placements == []
    other = make_store()
    other.delete(u1.segment_id)
    other.close()
    with pytest.raises(RetryLater) as caught:
        profiles.commit(Changes(generation=0), 3, 2)
    assert caught.value.message == (
        f"{make_store.where}: a profile was deleted while this batch was resolved — "
        "resolving it again"
    )
    assert resolver.sync() == 1
    fresh = _profile(profiles, ExternalId("user_id", "u1"))
    assert sorted(str(k) for k in fresh.identifiers) == ["user_id:u1"]
    assert {k: t.value for k, t in fresh.traits.items()} == {"plan": "pro"}


def test_what_another_resolver_committed_meanwhile_is_looked_up_again(
    pipeline: Pipeline, profiles: ProfileStore, make_store: Stores
) -> None:
    """One resolver runs per data directory; should a second one commit in between, the first
    forgets what it remembered (its cache, and which identifiers exist) instead of making a
    second owner of an identifier the other one claimed."""
    first = Resolver(pipeline.store, profiles)
    pipeline.send([message("identify", 1, 0, userId="u1")])
    assert first.sync() == 1
    pipeline.send([message("identify", 2, 1, userId="u2", traits={"email": "e2@x.com"})])
    other = make_store()
    assert Resolver(pipeline.store, other).sync() == 1
    other.close()
    pipeline.send([message("identify", 3, 2, anonymousId="a3", traits={"email": "e2@x.com"})])
    assert first.sync() == 1
    u2 = _profile(profiles, ExternalId("user_id", "u2"))
    assert profiles.owner(ExternalId("anonymous_id", "a3")) == u2.segment_id
    assert profiles.owner(ExternalId("email", "e2@x.com")) == u2.segment_id
    assert profiles.count() == {"users": 2}
