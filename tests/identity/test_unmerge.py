"""Unmerge over a real profiles store (each backend) and event store: the split profiles, their
identifiers, traits and events are exactly what resolving without the merging message gives."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mainstem.cli import app
from mainstem.errors import NotFound, RequestError
from mainstem.identity import report
from mainstem.identity import unmerge as unmerging
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.resolver import Resolver
from mainstem.identity.rules import Limit, Rules
from mainstem.identity.sqlite import SqliteProfileStore
from mainstem.identity.store import ProfileStore

from ..conftest import ADMIN_TOKEN, WRITE_KEY, InProcess
from .conftest import STORES, Pipeline, Stores, open_stores
from .helpers import message

runner = CliRunner()


def snapshot(store: ProfileStore) -> dict[str, dict[str, Any]]:
    """Live user profiles → identifiers, visible traits, the message ids placed on them."""
    conn = store._conn()  # type: ignore[attr-defined]
    out: dict[str, dict[str, Any]] = {}
    for (segment_id,) in conn.execute(  # the same table in every store
        "SELECT segment_id FROM profiles WHERE collection = 'users' ORDER BY segment_id"
    ).fetchall():
        profile = store.load(segment_id)
        assert profile is not None
        placed = store.events(store.members(segment_id), limit=1000)
        out[segment_id] = {
            "ids": sorted(str(i) for i in profile.identifiers),
            "traits": {k: t.value for k, t in sorted(profile.traits.items()) if not t.removed},
            "events": sorted(p.message_id for p in placed),
            "links": sorted(profile.links),
        }
    return out


def owner(store: ProfileStore, ref: str) -> str:
    kind, _, value = ref.partition(":")
    found = store.owner(ExternalId(kind, value))
    assert found is not None, ref
    return found


SHARED_TABLET = [
    message("page", 1, 0, anonymousId="tablet"),
    message("identify", 2, 1, userId="alice", anonymousId="laptop", traits={"plan": "pro"}),
    message("identify", 3, 2, anonymousId="tablet", traits={"email": "t@x.com", "name": "T"}),
    message("track", 4, 3, userId="alice", anonymousId="tablet", event="Opened"),
    message("identify", 5, 4, anonymousId="tablet", traits={"name": "Bob"}),
    message("track", 6, 5, userId="alice", anonymousId="phone", event="Opened"),
    # Merge protection keeps `tablet` from carol only because the merge gave it a user_id.
    message("identify", 7, 6, userId="carol", anonymousId="tablet", traits={"plan": "free"}),
    message("group", 8, 7, userId="alice", groupId="g1", traits={"name": "Initech"}),
]


def build(
    pipeline: Pipeline, messages: list[dict[str, Any]], make_store: Stores | None = None
) -> ProfileStore:
    """``messages`` resolved into a new store (profiles.db when no ``make_store``)."""
    pipeline.send(messages)
    store: ProfileStore
    if make_store is None:
        store = SqliteProfileStore(pipeline.root / "profiles.db", fsync=False)
    else:
        store = make_store()
    Resolver(pipeline.store, store).sync()
    return store


def test_unmerge_splits_the_profile_and_resolves_later_events_again(
    pipeline: Pipeline, make_store: Stores
) -> None:
    store = build(pipeline, SHARED_TABLET, make_store)
    try:
        tablet, carol = owner(store, "anonymous_id:phone"), owner(store, "user_id:carol")
        account = owner(store, "group_id:g1")
        merged = store.merges(store.members(tablet))
        assert [(m.message_id, m.canonical_segment_id) for m in merged] == [("m4", tablet)]
        alice = merged[0].segment_id
        assert snapshot(store)[carol]["ids"] == ["user_id:carol"]

        split = report.unmerge(store, pipeline.store, alice)

        assert split.excluded == 4
        assert snapshot(store) == {
            tablet: {
                "ids": ["anonymous_id:tablet", "email:t@x.com", "user_id:carol"],
                "traits": {"email": "t@x.com", "name": "Bob", "plan": "free"},
                "events": ["m1", "m3", "m5", "m7"],
                "links": [],
            },
            alice: {
                "ids": ["anonymous_id:laptop", "anonymous_id:phone", "user_id:alice"],
                "traits": {"plan": "pro"},
                "events": ["m2", "m6", "m8"],
                "links": [account],
            },
        }
        assert store.canonical(carol) is None  # carol's profile only existed because of m4
        assert store.merges(store.members(tablet)) == []
        assert store.violations(store.members(tablet)) == []
        linked = store.load(account)
        assert linked is not None and linked.links == {alice}
        assert store.generation() == 1  # a running resolver drops its cache
    finally:
        store.close()


def test_a_later_event_that_links_both_halves_merges_them_again(
    pipeline: Pipeline, make_store: Stores
) -> None:
    later = message(
        "track", 9, 8, userId="alice", event="Opened", context={"traits": {"email": "t@x.com"}}
    )
    store = build(pipeline, [*SHARED_TABLET[:6], later], make_store)
    try:
        tablet = owner(store, "anonymous_id:tablet")
        alice = store.merges(store.members(tablet))[0].segment_id
        report.unmerge(store, pipeline.store, alice)
        merges = store.merges(store.members(tablet))
        assert [(m.segment_id, m.message_id, str(m.via)) for m in merges] == [
            (alice, "m9", "user_id:alice")
        ]
        assert snapshot(store)[tablet]["events"] == ["m1", "m2", "m3", "m5", "m6", "m9"]
    finally:
        store.close()


def test_resolving_continues_on_the_split_profiles(pipeline: Pipeline, make_store: Stores) -> None:
    store = build(pipeline, SHARED_TABLET[:4], make_store)
    try:
        tablet = owner(store, "anonymous_id:tablet")
        alice = store.merges(store.members(tablet))[0].segment_id
        resolver = Resolver(pipeline.store, store)
        resolver.sync()  # caches the merged profile
        report.unmerge(store, pipeline.store, alice)
        pipeline.send([message("identify", 20, 9, userId="alice", traits={"plan": "team"})])
        assert resolver.sync() == 1
        assert owner(store, "user_id:alice") == alice
        assert snapshot(store)[alice]["traits"] == {"plan": "team"}
        assert snapshot(store)[tablet]["ids"] == ["anonymous_id:tablet", "email:t@x.com"]
    finally:
        store.close()


def test_an_identifier_an_unmerge_claims_for_the_first_time_is_found_by_a_running_resolver(
    pipeline: Pipeline, make_store: Stores
) -> None:
    """The resolver skips looking up identifiers it believes no profile holds (identity/seen.py).
    An unmerge can give a profile one that every earlier event had dropped: after it, the
    resolver must look again rather than make a second owner."""
    rules = Rules(limits={"user_id": Limit(1, "ever"), "email": Limit(1, "ever")})
    pipeline.send(
        [
            message("identify", 1, 0, userId="u1"),
            message("identify", 2, 1, anonymousId="a1", traits={"email": "e1@x.com"}),
            message("track", 3, 2, userId="u1", anonymousId="a1", event="Linked"),
            # u1's profile holds e1 now: the email limit drops e2, which no profile takes.
            message("identify", 4, 3, userId="u1", traits={"email": "e2@x.com"}),
        ]
    )
    store = make_store()
    try:
        resolver = Resolver(pipeline.store, store, rules=rules)
        assert resolver.sync() == 4
        u1 = owner(store, "user_id:u1")
        assert store.owner(ExternalId("email", "e2@x.com")) is None
        [merge] = store.merges(store.members(u1))
        report.unmerge(store, pipeline.store, merge.segment_id, rules=rules)
        assert owner(store, "email:e2@x.com") == u1  # replayed without the merge, u1 takes e2
        pipeline.send([message("identify", 5, 4, anonymousId="a5", traits={"email": "e2@x.com"})])
        assert resolver.sync() == 1
        assert owner(store, "email:e2@x.com") == owner(store, "anonymous_id:a5") == u1
    finally:
        store.close()


def test_only_a_merged_away_profile_can_be_unmerged(pipeline: Pipeline, make_store: Stores) -> None:
    store = build(pipeline, SHARED_TABLET[:4], make_store)
    try:
        tablet = owner(store, "anonymous_id:tablet")
        with pytest.raises(NotFound, match=f"^{tablet} was not merged into another profile"):
            report.unmerge(store, pipeline.store, tablet)
    finally:
        store.close()


def test_cli_unmerge_prints_the_profiles_it_split_into(pipeline: Pipeline) -> None:
    store = build(pipeline, SHARED_TABLET[:4])
    tablet = owner(store, "anonymous_id:tablet")
    alice = store.merges(store.members(tablet))[0].segment_id
    store.close()
    result = runner.invoke(
        app, ["profile", "unmerge", alice, "--data-dir", str(pipeline.root)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == sorted(
        [
            f"unmerged {alice} from {tablet}: track m4 is kept out of identity; "
            "3 event(s) resolved again into 2 profile(s)",
        ]
    ) + sorted(
        [
            f"  {tablet}: anonymous_id:tablet, email:t@x.com",
            f"  {alice}: anonymous_id:laptop, user_id:alice",
        ]
    )
    explained = runner.invoke(
        app,
        ["profile", "explain", "anonymous_id:tablet", "--data-dir", str(pipeline.root)],
        env={"COLUMNS": "200"},
    )
    assert explained.exit_code == 0, explained.output
    assert "├── unmerges (1)" in explained.output
    assert f"{alice} split off {tablet} at " in explained.output
    assert ": #4 m4 kept out of identity" in explained.output
    assert "├── merges (0)" in explained.output
    again = runner.invoke(app, ["profile", "unmerge", alice, "--data-dir", str(pipeline.root)])
    assert again.exit_code == 1
    assert f"{alice} was not merged into another profile" in again.output


# --- property: unmerge equals never having resolved the merging message -------------------------

POOL = {
    "userId": [f"u{n}" for n in range(2)],
    "anonymousId": [f"a{n}" for n in range(4)],
    "email": [f"e{n}@x.com" for n in range(2)],
}


def _message(n: int, fields: dict[str, str], trait: int) -> dict[str, Any]:
    msg = message("identify", n, n, traits={"seen": trait})
    for key, value in fields.items():
        if key == "email":
            msg["traits"]["email"] = value
        else:
            msg[key] = value
    return msg


streams = st.lists(
    st.tuples(
        # Every event has a device id and most add a user_id or email: merges are common.
        st.fixed_dictionaries(
            {"anonymousId": st.sampled_from(POOL["anonymousId"])},
            optional={
                "userId": st.sampled_from(POOL["userId"]),
                "email": st.sampled_from(POOL["email"]),
            },
        ),
        st.integers(0, 3),
    ),
    min_size=3,
    max_size=24,
)


def _partition(store: ProfileStore) -> set[tuple[frozenset[str], str, frozenset[str]]]:
    return {
        (frozenset(p["ids"]), repr(p["traits"]), frozenset(p["events"]))
        for p in snapshot(store).values()
    }


@pytest.mark.parametrize("kind", STORES)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(streams, st.integers(0, 10))
def test_unmerge_equals_resolving_without_the_merging_message(
    kind: str, drawn: list[tuple[dict[str, str], int]], pick: int
) -> None:
    messages = [_message(n, fields, trait) for n, (fields, trait) in enumerate(drawn, 1)]
    with tempfile.TemporaryDirectory() as tmp:
        merged = Pipeline(Path(tmp) / "merged")
        try:
            with open_stores(kind, merged.root) as stores:
                store = build(merged, messages, stores)
                merges = [row[0] for row in stores.query(store, "SELECT segment_id FROM {merges}")]
                assume(merges)
                undone = sorted(merges)[pick % len(merges)]
                split = report.unmerge(store, merged.store, undone)
                got = _partition(store)
        finally:
            merged.close()
        without = [m for m in messages if m["messageId"] != split.merge.message_id]
        fresh = Pipeline(Path(tmp) / "fresh")
        try:
            with open_stores(kind, fresh.root) as stores:
                assert got == _partition(build(fresh, without, stores))
        finally:
            fresh.close()


def test_admin_api_unmerges(inproc: InProcess) -> None:
    batch = SHARED_TABLET[:4]
    response = inproc.client.post("/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert response.status_code == 200, response.text
    inproc.process()
    assert inproc.app.store is not None
    store = SqliteProfileStore(inproc.app.data.root / "profiles.db", fsync=False)
    try:
        Resolver(inproc.app.store, store).sync()
        tablet = owner(store, "anonymous_id:tablet")
        alice = store.merges(store.members(tablet))[0].segment_id
    finally:
        store.close()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = inproc.client.post(f"/api/v1/profiles/{alice}/unmerge", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "data": {
            "segment_id": alice,
            "canonical_segment_id": tablet,
            "message_id": "m4",
            "excluded_seq": 4,
            "replayed_events": 3,
            "profiles": sorted(
                [
                    {
                        "segment_id": tablet,
                        "external_ids": [
                            {"type": "anonymous_id", "id": "tablet"},
                            {"type": "email", "id": "t@x.com"},
                        ],
                    },
                    {
                        "segment_id": alice,
                        "external_ids": [
                            {"type": "anonymous_id", "id": "laptop"},
                            {"type": "user_id", "id": "alice"},
                        ],
                    },
                ],
                key=lambda p: str(p["segment_id"]),
            ),
        }
    }
    again = inproc.client.post(f"/api/v1/profiles/{alice}/unmerge", headers=headers)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"
    denied = inproc.client.post(f"/api/v1/profiles/{alice}/unmerge")
    assert denied.status_code == 401


def test_unmerge_is_refused_when_the_events_are_gone_from_the_event_store(
    pipeline: Pipeline, make_store: Stores
) -> None:
    store = build(pipeline, SHARED_TABLET[:4], make_store)
    try:
        tablet = owner(store, "anonymous_id:tablet")
        alice = store.merges(store.members(tablet))[0].segment_id
        with pytest.raises(RequestError) as raised:
            unmerging.plan(store, lambda seqs: {}, Rules(), alice)
        assert raised.value.message == (
            f"event #1 of {tablet} is gone from the event store (retention) — "
            "the profile can no longer be replayed without it"
        )
        assert store.merges(store.members(tablet))[0].segment_id == alice  # nothing changed
    finally:
        store.close()
