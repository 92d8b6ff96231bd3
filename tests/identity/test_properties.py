"""Properties of the graph (Hypothesis): one owner per identifier, limits hold, and per-user
streams interleaved in any order give the same partition of identifiers."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mainstem.identity.graph import Event, MemoryState, resolve
from mainstem.identity.rules import Rules

RULES = Rules()
POOL = {
    "userId": [f"u{n}" for n in range(4)],
    "anonymousId": [f"a{n}" for n in range(8)],
    "email": [f"e{n}@x.com" for n in range(4)],
}


def _message(n: int, fields: dict[str, str]) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "identify",
        "messageId": f"m{n}",
        "timestamp": f"2024-05-01T10:00:{n % 60:02d}.000Z",
    }
    for key, value in fields.items():
        if key == "email":
            msg["traits"] = {"email": value}
        else:
            msg[key] = value
    return msg


events = st.lists(
    st.dictionaries(st.sampled_from(sorted(POOL)), st.integers(0, 7), min_size=1, max_size=3).map(
        lambda d: {k: POOL[k][v % len(POOL[k])] for k, v in d.items()}
    ),
    max_size=30,
)


def _run(messages: list[dict[str, Any]]) -> MemoryState:
    state = MemoryState()
    for msg in messages:
        resolve(state, RULES, Event.from_message(msg, "web"))
    return state


@settings(max_examples=60, deadline=None)
@given(events)
def test_no_identifier_is_in_two_live_profiles_and_owners_agree(
    fields: list[dict[str, str]],
) -> None:
    state = _run([_message(n, f) for n, f in enumerate(fields)])
    seen: Counter[Any] = Counter()
    for segment_id, profile in state.profiles.items():
        for key in profile.identifiers:
            seen[key] += 1
            assert state.owners[key] == segment_id
    assert all(count == 1 for count in seen.values())
    assert set(state.owners) == set(seen)


@settings(max_examples=60, deadline=None)
@given(events)
def test_limits_are_never_exceeded(fields: list[dict[str, str]]) -> None:
    state = _run([_message(n, f) for n, f in enumerate(fields)])
    for profile in state.profiles.values():
        per_type = Counter(key.type for key in profile.identifiers)
        for type, count in per_type.items():
            assert count <= RULES.limit(type).values, (profile.segment_id, type, count)


def _user_stream(user: int, picks: list[int]) -> list[dict[str, str]]:
    """One person's events: their own user_id, device ids and email, never anyone else's."""
    own = {
        0: {"userId": f"u{user}"},
        1: {"anonymousId": f"a{user}-1"},
        2: {"anonymousId": f"a{user}-2", "userId": f"u{user}"},
        3: {"email": f"p{user}@x.com", "anonymousId": f"a{user}-1"},
        4: {"email": f"p{user}@x.com"},
    }
    return [own[p] for p in picks]


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[list[list[dict[str, str]]], list[int]]:
    streams = [
        _user_stream(user, draw(st.lists(st.integers(0, 4), min_size=1, max_size=6)))
        for user in range(draw(st.integers(1, 4)))
    ]
    order = [i for i, stream in enumerate(streams) for _ in stream]
    return streams, draw(st.permutations(order))


def _partition(state: MemoryState) -> set[frozenset[str]]:
    return {frozenset(str(k) for k in p.identifiers) for p in state.profiles.values()}


@settings(max_examples=60, deadline=None)
@given(interleavings())
def test_any_order_that_keeps_each_users_order_gives_the_same_graph(
    case: tuple[list[list[dict[str, str]]], list[int]],
) -> None:
    streams, order = case
    sequential = [f for stream in streams for f in stream]
    cursors = [0] * len(streams)
    shuffled = []
    for index in order:
        shuffled.append(streams[index][cursors[index]])
        cursors[index] += 1
    first = _run([_message(n, f) for n, f in enumerate(sequential)])
    second = _run([_message(n, f) for n, f in enumerate(shuffled)])
    assert _partition(first) == _partition(second)
