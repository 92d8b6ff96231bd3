"""Identity resolution scenarios (reference §3.4), asserting exact profiles and identifiers."""

from __future__ import annotations

from mainstem.identity.graph import (
    BLOCKED,
    NO_IDENTIFIERS,
    TIME_LIMIT,
    VALUE_LIMIT,
    Drop,
    Merge,
)
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.rules import DAY_US, Limit, Rules
from mainstem.timestamps import parse

from .helpers import World, at, message


def test_anonymous_visitor_becomes_known_on_identify() -> None:
    world = World()
    first = world.send(message("page", 1, anonymousId="a1"))
    world.send(message("track", 2, 1, anonymousId="a1", event="Viewed"))
    known = world.send(
        message("identify", 3, 2, anonymousId="a1", userId="u1", traits={"name": "Ann"})
    )
    assert first.created == ["use_1"]
    assert known.segment_id == "use_1"
    assert world.graph() == {"use_1": ["anonymous_id:a1", "user_id:u1"]}
    assert world.traits("use_1") == {"name": "Ann"}
    assert [(sid, i.id, i.first_message_id) for sid, i in known.added] == [
        ("use_1", ExternalId("user_id", "u1"), "m3")
    ]


def test_two_devices_merge_into_the_older_profile_through_user_id() -> None:
    world = World()
    world.send(message("identify", 1, 0, anonymousId="phone", userId="u1"))
    world.send(message("page", 2, 1, anonymousId="laptop"))
    result = world.send(message("identify", 3, 2, anonymousId="laptop", userId="u1"))
    assert world.graph() == {"use_1": ["anonymous_id:laptop", "anonymous_id:phone", "user_id:u1"]}
    assert result.merges == [
        Merge(
            segment_id="use_2",
            canonical_segment_id="use_1",
            message_id="m3",
            source_id="web",
            event_type="identify",
            timestamp=parse(at(2)) or 0,
            via=ExternalId("anonymous_id", "laptop"),
            rule="anonymous_id: 5 ever",
        )
    ]
    assert world.state.canonical("use_2") == "use_1"
    assert world.state.profiles["use_1"].merges == 1


def test_an_email_shared_by_two_users_is_stopped_by_the_user_id_limit() -> None:
    world = World()
    world.send(message("identify", 1, userId="abc123", traits={"email": "jane@example.com"}))
    result = world.send(
        message("identify", 2, 1, userId="abc456", traits={"email": "Jane@Example.com"})
    )
    assert world.graph() == {
        "use_1": ["email:jane@example.com", "user_id:abc123"],
        "use_2": ["user_id:abc456"],
    }
    assert result.dropped == [
        Drop(ExternalId("email", "jane@example.com"), VALUE_LIMIT, "user_id: 1 ever")
    ]
    assert result.merges == []


def test_a_shared_anonymous_id_never_fuses_two_known_users() -> None:
    world = World()
    world.send(message("identify", 1, anonymousId="kiosk", userId="u1"))
    result = world.send(message("identify", 2, 1, anonymousId="kiosk", userId="u2"))
    assert world.graph() == {"use_1": ["anonymous_id:kiosk", "user_id:u1"], "use_2": ["user_id:u2"]}
    assert result.dropped == [
        Drop(ExternalId("anonymous_id", "kiosk"), VALUE_LIMIT, "user_id: 1 ever")
    ]


def test_blocked_values_never_become_identifiers() -> None:
    world = World()
    values = ["null", "undefined", "0", "anonymous", "00000000-0000-0000-0000-000000000000", "-1"]
    for n, value in enumerate(values):
        result = world.send(message("track", n, anonymousId=value, event="X"))
        assert result.blocked == [ExternalId("anonymous_id", value)]
        assert result.error == NO_IDENTIFIERS
    world.send(message("identify", 10, userId="u1", traits={"email": "test@test.com"}))
    world.send(message("identify", 11, userId="u2", traits={"email": "TEST@test.com"}))
    assert world.graph() == {"use_1": ["user_id:u1"], "use_2": ["user_id:u2"]}
    assert BLOCKED == "ID value blocked"


def test_blocked_values_are_configurable() -> None:
    world = World(Rules(blocked=frozenset({"abc123"}), blocked_pattern=None))
    world.send(message("track", 1, anonymousId="0", userId="abc123"))
    assert world.graph() == {"use_1": ["anonymous_id:0"]}


def test_alias_from_a_temporary_id_does_not_merge() -> None:
    world = World()
    world.send(message("track", 1, userId="temp-42", event="Signed Up"))
    result = world.send(message("alias", 2, 1, userId="u1", previousId="temp-42"))
    assert result.merges == []
    assert world.graph() == {"use_1": ["user_id:temp-42"], "use_2": ["user_id:u1"]}


def test_identify_with_a_changed_email_keeps_both_emails_and_the_newest_trait() -> None:
    world = World()
    world.send(message("identify", 1, 0, userId="u1", traits={"email": "old@x.com"}))
    world.send(message("identify", 2, 1, userId="u1", traits={"email": "new@x.com"}))
    assert world.graph() == {"use_1": ["email:new@x.com", "email:old@x.com", "user_id:u1"]}
    assert world.traits("use_1") == {"email": "new@x.com"}


def test_a_group_call_links_the_user_to_an_account_with_traits() -> None:
    world = World()
    result = world.send(
        message("group", 1, userId="u1", groupId="g1", traits={"name": "Initech", "plan": "pro"})
    )
    assert (result.segment_id, result.account_id) == ("use_1", "acc_2")
    assert world.graph() == {"use_1": ["user_id:u1"]}
    assert world.graph("accounts") == {"acc_2": ["group_id:g1"]}
    assert world.traits("acc_2") == {"name": "Initech", "plan": "pro"}
    assert world.traits("use_1") == {}
    assert world.state.profiles["use_1"].links == {"acc_2"}
    assert world.state.profiles["acc_2"].links == {"use_1"}


def test_links_follow_a_merge() -> None:
    world = World()
    world.send(message("identify", 1, 0, userId="u1"))
    world.send(message("group", 2, 1, anonymousId="a1", groupId="g1"))
    world.send(message("identify", 3, 2, anonymousId="a1", userId="u1"))
    assert world.state.profiles["use_1"].links == {"acc_3"}
    assert world.state.profiles["acc_3"].links == {"use_1"}


def test_events_out_of_order_never_overwrite_a_newer_trait() -> None:
    world = World()
    world.send(message("identify", 2, 30, userId="u1", traits={"plan": "pro", "city": None}))
    world.send(message("identify", 1, 10, userId="u1", traits={"plan": "free", "city": "Oslo"}))
    world.send(message("identify", 3, 20, userId="u1", traits={"age": 40}))
    assert world.traits("use_1") == {"age": 40, "plan": "pro"}
    profile = world.state.profiles["use_1"]
    assert (profile.first_message_id, profile.last_message_id) == ("m1", "m2")


def test_merged_traits_keep_the_newest_value_by_event_time() -> None:
    world = World()
    world.send(message("identify", 1, 5, anonymousId="a1", traits={"plan": "trial"}))
    world.send(message("identify", 2, 1, userId="u1", traits={"plan": "pro", "name": "Bo"}))
    world.send(message("track", 3, 9, anonymousId="a1", userId="u1", event="X"))
    # The survivor is the profile whose first event is older, whatever arrived first.
    assert world.graph() == {"use_2": ["anonymous_id:a1", "user_id:u1"]}
    assert world.traits("use_2") == {"name": "Bo", "plan": "trial"}


def test_a_windowed_limit_counts_only_values_seen_inside_the_window() -> None:
    rules = Rules(limits={"user_id": Limit(1), "anonymous_id": Limit(1, "daily")})
    world = World(rules)
    world.send(message("track", 1, userId="u1", anonymousId="a1", timestamp="2024-05-01T00:00:00Z"))
    blocked = world.send(
        message("track", 2, userId="u1", anonymousId="a2", timestamp="2024-05-01T12:00:00Z")
    )
    world.send(message("track", 3, userId="u1", anonymousId="a3", timestamp="2024-05-03T00:00:00Z"))
    assert blocked.dropped == [
        Drop(ExternalId("anonymous_id", "a2"), TIME_LIMIT, "anonymous_id: 1 daily")
    ]
    assert world.graph() == {"use_1": ["anonymous_id:a1", "anonymous_id:a3", "user_id:u1"]}
    assert DAY_US == 86_400_000_000


def test_the_merge_cap_stops_a_hundred_and_first_merge() -> None:
    world = World(Rules(limits={"user_id": Limit(1), "anonymous_id": Limit(1000)}, max_merges=2))
    world.send(message("track", 0, 0, userId="u1", anonymousId="a0"))
    for n in range(1, 4):
        world.send(message("page", n, n, anonymousId=f"a{n}"))
    for n in range(1, 4):
        world.send(message("track", 10 + n, 10 + n, userId="u1", anonymousId=f"a{n}"))
    assert world.graph() == {
        "use_1": ["anonymous_id:a0", "anonymous_id:a1", "anonymous_id:a2", "user_id:u1"],
        "use_4": ["anonymous_id:a3"],
    }


def test_custom_identifiers_from_external_ids_and_trait_keys() -> None:
    from mainstem.identity.identifiers import CustomIdentifier, user_identifiers

    msg = message(
        "identify",
        1,
        userId="u1",
        traits={"phoneNumber": "555"},
        context={
            "externalIds": [
                {"id": "X-1", "type": "Crm_ID", "collection": "users", "encoding": "none"},
                {"id": "g", "type": "group_id", "collection": "users", "encoding": "none"},
                {"id": "Y", "type": "other", "collection": "accounts", "encoding": "none"},
            ],
            "device": {"type": "ios", "id": "dev1", "advertisingId": "ad1", "token": "tok"},
            "integrations": {"Google Analytics": {"clientId": "ga1"}},
        },
    )
    assert [str(i) for i in user_identifiers(msg, [CustomIdentifier("phone", "phone_number")])] == [
        "user_id:u1",
        "ios.id:dev1",
        "ios.push_token:tok",
        "ga_client_id:ga1",
        "crm_id:X-1",
        "phone:555",
    ]


def test_an_identifier_repeated_in_external_ids_is_listed_once() -> None:
    from mainstem.identity.identifiers import user_identifiers

    entry = {"id": "a@b.co", "type": "email", "collection": "users", "encoding": "none"}
    msg = message(
        "identify", 1, userId="u1", traits={"email": "a@b.co"}, context={"externalIds": [entry] * 2}
    )
    assert [str(i) for i in user_identifiers(msg)] == ["user_id:u1", "email:a@b.co"]


def test_values_holding_a_nul_character_are_never_identifiers() -> None:
    from mainstem.identity.identifiers import user_identifiers

    msg = message("identify", 1, userId="u\x001", anonymousId="a1", traits={"email": "x\x00@b.co"})
    assert [str(i) for i in user_identifiers(msg)] == ["anonymous_id:a1"]


def test_new_segment_ids_are_unique_and_sort_in_creation_order() -> None:
    import re

    from mainstem.identity.graph import SegmentIds

    new_id = SegmentIds()
    ids = [new_id("users" if i % 7 else "accounts") for i in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert [i[4:] for i in ids] == sorted(i[4:] for i in ids)  # past carries (1 in 62)
    assert all(re.fullmatch(r"(use|acc)_[0-9A-Za-z]{27}", i) for i in ids)
