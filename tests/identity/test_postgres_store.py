"""What only the PostgreSQL profiles store has to prove: several processes on one schema, paging
through the identifiers, text PostgreSQL cannot hold, a lost server — and that the resolver
builds the same graph on it as on SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from mainstem.errors import RetryLater
from mainstem.identity.cache import Changes
from mainstem.identity.graph import Identifier, Merge, Profile
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.postgres import PostgresProfileStore
from mainstem.identity.resolver import Resolver
from mainstem.identity.store import ProfileStore
from mainstem.identity.traits import Trait
from tests.storage.postgres import BASE_URL, fresh_schema

from .conftest import Pipeline, Stores, open_stores
from .helpers import message

T = 1_714_557_600_000_000


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema("identity") as url:
        yield url


def one_profile(
    segment_id: str, ids: list[str], *, message_id: str = "m1", traits: dict[str, Any] | None = None
) -> Changes:
    """Changes creating one users profile holding ``ids`` (``type:value``), placed by seq 1."""
    profile = Profile(segment_id, "users", T, message_id, "web", T, message_id, "web")
    claimed = {}
    for ref in ids:
        id = ExternalId(*ref.split(":", 1))
        profile.identifiers[id] = Identifier(id, "web", message_id, T)
        claimed[id] = segment_id
    for key, value in (traits or {}).items():
        profile.traits[key] = Trait(value, T, "web")
        profile.changed.add(key)
    return Changes(
        profiles={segment_id: profile},
        claimed=claimed,
        placements=[(1, segment_id, message_id, "identify", T)],
    )


def test_a_commit_from_a_stale_position_raises_and_writes_nothing(url: str) -> None:
    first, second = PostgresProfileStore(url), PostgresProfileStore(url)
    try:
        first.commit(one_profile("use_a", ["user_id:a"]), 1, 0)
        with pytest.raises(RetryLater) as caught:
            second.commit(one_profile("use_b", ["user_id:b"], traits={"plan": "pro"}), 1, 0)
        assert caught.value.message == (
            "profiles in PostgreSQL: the resolver position is 1, expected 0 — another resolver "
            "is running on this database"
        )
        for store in (first, second):
            assert store.position() == 1
            assert store.count() == {"users": 1}
            assert store.owner(ExternalId("user_id", "b")) is None
            assert store.load("use_b") is None
            assert store.events(["use_b"], limit=10) == []
    finally:
        first.close()
        second.close()


def test_two_stores_committing_from_the_same_position_at_once_commit_once(url: str) -> None:
    stores = [PostgresProfileStore(url) for _ in range(2)]
    start = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def commit(store: PostgresProfileStore, n: int) -> None:
        start.wait()
        try:
            store.commit(one_profile(f"use_{n}", [f"user_id:{n}"]), 1, 0)
            outcomes.append("committed")
        except RetryLater:
            outcomes.append("retry")

    threads = [threading.Thread(target=commit, args=(s, n)) for n, s in enumerate(stores)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["committed", "retry"]
        assert stores[0].count() == {"users": 1}
        assert len(list(stores[0].identifier_keys())) == 1
    finally:
        for store in stores:
            store.close()


def test_identifier_keys_pages_through_more_identifiers_than_one_chunk(url: str) -> None:
    store = PostgresProfileStore(url)
    try:
        # Values chosen so byte order and a locale's order differ ("B" < "a" only in bytes).
        ids = [f"anonymous_id:{v}" for v in ("a", "B", "c", "D", "e")]
        ids += [f"user_id:u{n}" for n in range(6)]
        store.commit(one_profile("use_a", ids), 1, 0)
        keys = store.identifier_keys(chunk=3)
        assert next(keys) == ("anonymous_id", "B")  # an iterator: nothing is read in advance
        assert [("anonymous_id", "B"), *keys] == sorted(
            (ref.split(":")[0], ref.split(":")[1]) for ref in ids
        )
        assert len(list(store.identifier_keys(chunk=11))) == 11  # exactly one full chunk
        reader = PostgresProfileStore(url, readonly=True)
        assert len(list(reader.identifier_keys())) == 11
        reader.close()
    finally:
        store.close()


def test_text_postgresql_cannot_hold_is_written_with_a_replacement_character(url: str) -> None:
    store = PostgresProfileStore(url)
    try:
        changes = one_profile(
            "use_a", ["user_id:a"], message_id="m\x00", traits={"k\x00": "v\x00", "n": None}
        )
        changes.merges.append(
            Merge(
                "use_gone",
                "use_a",
                "m\x00",
                "web",
                "identify",
                T,
                ExternalId("email", "x\x00"),
                "r",
            )
        )
        changes.violations.append((1, "m\x00", "use_a", "email", "y\x00", "limit", "r"))
        store.commit(changes, 1, 0)
        profile = store.load("use_a")
        assert profile is not None
        assert (profile.first_message_id, profile.last_message_id) == ("m\ufffd", "m\ufffd")
        # A trait value is JSON text, where a NUL is escaped: it comes back as it was.
        assert {k: t.value for k, t in profile.traits.items()} == {"k\ufffd": "v\x00", "n": None}
        [identifier] = profile.identifiers.values()
        assert identifier.first_message_id == "m\ufffd"
        [merge] = store.merges(["use_a"])
        assert (merge.message_id, merge.via) == ("m\ufffd", ExternalId("email", "x\ufffd"))
        [placed] = store.events(["use_a"], limit=10)
        assert placed.message_id == "m\ufffd"
        [violation] = store.violations(["use_a"])
        assert (violation.message_id, violation.drop.id.value) == ("m\ufffd", "y\ufffd")
        # Lookups clean their parameters the same way instead of failing.
        assert store.kept_out(ExternalId("email", "y\x00")) == ["use_a"]
        assert store.load("use_a\x00") is None
        assert store.owner(ExternalId("user_id", "a\x00")) is None
        assert store.canonical("use_gone\x00") is None
        assert store.delete_identifier("use_a", ExternalId("user_id", "a\x00")) is False
    finally:
        store.close()


def test_a_readonly_store_sees_what_the_writer_commits(url: str) -> None:
    reader = PostgresProfileStore(url, readonly=True)  # before any writer: the schema exists
    try:
        assert (reader.position(), reader.generation(), reader.count()) == (0, 0, {})
        writer = PostgresProfileStore(url)
        try:
            writer.commit(one_profile("use_a", ["user_id:a"], traits={"plan": "pro"}), 7, 0)
            assert writer.delete_identifier("use_a", ExternalId("user_id", "a"))
        finally:
            writer.close()
        assert (reader.position(), reader.generation(), reader.count()) == (7, 1, {"users": 1})
        profile = reader.load("use_a")
        assert profile is not None and profile.traits["plan"].value == "pro"
        assert profile.identifiers == {}
        with pytest.raises(AssertionError, match="opened read-only"):
            reader.commit(Changes(generation=1), 8, 7)
    finally:
        reader.close()
        reader.close()  # idempotent


def test_a_server_that_is_not_there_is_retry_later() -> None:
    with pytest.raises(RetryLater) as caught:
        PostgresProfileStore("postgresql://postgres@127.0.0.1:9/test")
    assert caught.value.message.startswith(
        "profiles in PostgreSQL: the server is unreachable (connection failed: "
    )


def test_a_store_whose_connections_were_dropped_reconnects(url: str) -> None:
    store = PostgresProfileStore(url)
    try:
        store.commit(one_profile("use_a", ["user_id:a"]), 1, 0)
        assert store.position() == 1
        _drop_connections(url)
        assert store.position() == 1  # a read is retried once on a fresh connection
        with pytest.raises(RetryLater, match=r"^profiles in PostgreSQL: the server is unreachable"):
            store.commit(one_profile("use_b", ["user_id:b"]), 2, 1)  # nothing was written
        store.commit(one_profile("use_b", ["user_id:b"]), 2, 1)
        assert store.count() == {"users": 2}
    finally:
        store.close()


def _drop_connections(url: str) -> None:
    """End every session of ``url``'s schema, as a server restart would."""
    schema = url.rsplit("application_name=", 1)[1]
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (schema,),
        )


# --- the same graph as on SQLite ----------------------------------------------------------------

MIXED: list[dict[str, Any]] = [
    message("page", 1, 0, anonymousId="phone"),
    message("identify", 2, 5, anonymousId="phone", userId="u1", traits={"plan": "pro", "a": 1}),
    # Arrives later but happened earlier: it must not overwrite plan, and it adds "old".
    message("identify", 3, 1, userId="u1", traits={"plan": "free", "old": True}),
    message("page", 4, 6, anonymousId="laptop"),
    message("identify", 5, 7, anonymousId="laptop", traits={"email": "ann@x.com"}),
    message("track", 6, 8, anonymousId="laptop", userId="u1", event="Bought"),  # merges laptop
    message("group", 7, 9, userId="u1", groupId="g1", traits={"name": "Initech"}),
    message("identify", 8, 10, userId="u2", traits={"email": "ann@x.com", "a": None}),
    message("group", 9, 11, userId="u2", groupId="g1"),
    message("identify", 10, 12, userId="u1", traits={"a": None}),
    message("track", 11, 13, anonymousId="tablet", event="Opened"),
]


def picture(stores: Stores, store: ProfileStore) -> dict[str, Any]:
    """Every live profile, named by its identifiers rather than its random segment_id, with
    its traits, metadata, links, merges, placed events and violations."""
    live = [row[0] for row in stores.query(store, "SELECT segment_id FROM profiles")]
    names: dict[str, str] = {}
    for segment_id in live:
        profile = store.load(segment_id)
        assert profile is not None
        names[segment_id] = ",".join(str(id) for id in profile.identifiers)
        for member in store.members(segment_id):
            names.setdefault(member, f"{names[segment_id]}<-{member != segment_id}")
    out: dict[str, Any] = {}
    for segment_id in live:
        profile = store.load(segment_id)
        assert profile is not None
        members = store.members(segment_id)
        out[names[segment_id]] = {
            "collection": profile.collection,
            "identifiers": [
                (str(i.id), i.first_message_id, i.created_at) for i in profile.identifiers.values()
            ],
            "traits": sorted((k, repr(t)) for k, t in profile.traits.items()),
            "meta": (
                profile.created_at,
                profile.first_message_id,
                profile.updated_at,
                profile.last_message_id,
                profile.merges,
            ),
            "links": sorted(names[s] for s in profile.links),
            "merges": [
                (m.message_id, str(m.via), m.rule, m.event_type, m.timestamp)
                for m in store.merges(members)
            ],
            "events": [
                (e.seq, names[e.segment_id], e.message_id, e.type, e.timestamp)
                for e in store.events(members, limit=100)
            ],
            "violations": [
                (v.seq, v.message_id, str(v.drop.id), v.drop.reason, v.drop.rule)
                for v in store.violations(members)
            ],
        }
    out["count"] = store.count()
    out["position"] = store.position()
    return out


@pytest.mark.parametrize("batch_events", [3, 10_000])
def test_the_resolver_builds_the_same_graph_as_on_sqlite(
    pipeline: Pipeline, batch_events: int
) -> None:
    pipeline.send(MIXED)
    pictures = []
    for kind in ("sqlite", "postgres"):
        with open_stores(kind, pipeline.root) as stores:
            store = stores()
            assert Resolver(pipeline.store, store, batch_events=batch_events).sync() == 11
            pictures.append(picture(stores, store))
    on_sqlite, on_postgres = pictures
    assert on_postgres == on_sqlite
    assert on_sqlite["count"] == {"accounts": 1, "users": 3}
    u1 = next(p for name, p in on_sqlite.items() if "user_id:u1" in name)
    assert [m[0] for m in u1["merges"]] == ["m6"]
    assert dict(u1["traits"]).keys() == {"a", "email", "old", "plan"}
