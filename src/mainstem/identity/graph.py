"""The identity graph: Segment's flat matching with merge protection (reference §3.4).

For each event: drop blocked values, look up the profiles holding any identifier, then

* no match → a new profile; one match → attach the event and any new identifiers;
  several → merge them into the oldest (Segment's worked example keeps the earlier profile);
* when the resulting profile would hold more values of a type than its limit allows (or pass the
  hard caps on merges and identifiers), drop the lowest-priority identifier the *event* carries
  and look up again. So a shared ``email`` never fuses two ``user_id`` s.

Only limits an event would *raise* count: tightening a rule later does not rewrite a profile
that already holds more (§3.3). Every merge is recorded with the message that caused it and the
identifier and rule that allowed it. ``alias`` is resolved like any call; its ``previousId`` is
not an identifier — Unify does not merge on alias (§3.4). A group call links the user's profile
to the account profile keyed by ``group_id``.

This module is pure: it reads and writes profiles through :class:`GraphState`.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import msgspec

from mainstem import timestamps
from mainstem.identity import traits as trait_rules
from mainstem.identity.identifiers import (
    CustomIdentifier,
    ExternalId,
    group_identifier,
    user_identifiers,
)
from mainstem.identity.rules import WINDOWS, Rules
from mainstem.identity.traits import Trait
from mainstem.ids import NEXT_DIGIT, base62, ksuid_number

NO_IDENTIFIERS = "No matching identifiers on event"
VALUE_LIMIT = "Identifier value limit exceeded"
TIME_LIMIT = "Identifier value time limit exceeded"
BLOCKED = "ID value blocked"
MERGE_LIMIT = "Profile merge limit exceeded"
MAPPING_LIMIT = "Identifier mapping limit exceeded"

PREFIXES = {"users": "use_", "accounts": "acc_"}


class Identifier(msgspec.Struct, gc=False):
    id: ExternalId
    source_id: str
    first_message_id: str
    created_at: int
    """Event time the identifier was first seen (µs)."""


class Profile(msgspec.Struct, gc=False):
    """A profile as the graph changes it. (msgspec structs here and below: one or more is built
    per event, several times faster than a dataclass; none is part of a reference cycle, so
    the garbage collector need not track them.)"""

    segment_id: str
    collection: str
    created_at: int
    first_message_id: str
    first_source_id: str
    updated_at: int
    last_message_id: str
    last_source_id: str
    identifiers: dict[ExternalId, Identifier] = msgspec.field(default_factory=dict)
    traits: dict[str, Trait] = msgspec.field(default_factory=dict)
    merges: int = 0
    links: set[str] = msgspec.field(default_factory=set)
    """segment_ids of linked profiles in the other collection (users ↔ accounts)."""
    changed: set[str] = msgspec.field(default_factory=set)
    """Trait keys changed since a store last wrote this profile (it writes only those)."""
    relinked: bool = False
    """``links`` changed since a store last wrote this profile (it rewrites them only then)."""


class Merge(msgspec.Struct, frozen=True, gc=False):
    segment_id: str
    """The profile merged away."""
    canonical_segment_id: str
    """The profile it now belongs to."""
    message_id: str
    source_id: str
    event_type: str
    timestamp: int
    via: ExternalId
    """The event's identifier that matched the merged-away profile."""
    rule: str
    """The limit of ``via``'s type that the merge stayed within, e.g. ``anonymous_id: 5 ever``."""


class Drop(msgspec.Struct, frozen=True, gc=False):
    id: ExternalId
    reason: str
    """One of Segment's Profiles Insights violation names (``Identifier value limit exceeded``)."""
    rule: str


class Event(msgspec.Struct, gc=False):
    """What resolution needs of one stored message (a msgspec struct: one is built per
    event)."""

    message_id: str
    source_id: str
    type: str
    timestamp: int
    ids: tuple[ExternalId, ...]
    group: ExternalId | None = None
    traits: dict[str, Any] = {}

    def identifiers(self) -> tuple[ExternalId, ...]:
        """The user identifiers and the group id, if any."""
        return self.ids if self.group is None else (*self.ids, self.group)

    @classmethod
    def from_message(
        cls,
        message: Mapping[str, Any],
        source_id: str,
        received_at: int = 0,
        custom: Sequence[CustomIdentifier] = (),
    ) -> Event:
        kind = message.get("type")
        if not isinstance(kind, str):
            kind = ""
        traits = message.get("traits") if kind == "identify" or kind == "group" else None
        message_id = message.get("messageId")
        at = timestamps.parse(message.get("timestamp"))
        return cls(  # positional: one is built per event
            message_id if isinstance(message_id, str) else str(message_id or ""),
            source_id,
            kind,
            at if at is not None else received_at,
            tuple(user_identifiers(message, custom)),
            group_identifier(message) if kind == "group" else None,
            traits if isinstance(traits, dict) else _NO_TRAITS,
        )


_NO_TRAITS: dict[str, Any] = {}
"""The traits of an event that sets none (shared: never written to)."""


class Resolution(msgspec.Struct, gc=False):
    segment_id: str | None = None
    account_id: str | None = None
    created: list[str] = msgspec.field(default_factory=list)
    added: list[tuple[str, Identifier]] = msgspec.field(default_factory=list)
    """(segment_id, identifier) pairs newly attached."""
    merges: list[Merge] = msgspec.field(default_factory=list)
    dropped: list[Drop] = msgspec.field(default_factory=list)
    blocked: list[ExternalId] = msgspec.field(default_factory=list)
    error: str | None = None


class GraphState(Protocol):
    """Where the graph lives. The graph mutates :class:`Profile` objects it got from
    :meth:`profile` and hands each one back through :meth:`save`; a store persists what it was
    given when its owner commits (and forgets it on rollback)."""

    def owner(self, id: ExternalId) -> str | None:
        """The segment_id of the live profile holding ``id``, or ``None``."""
        ...

    def profile(self, segment_id: str) -> Profile:
        """The live profile ``segment_id`` (raises ``KeyError`` for an unknown one)."""
        ...

    def save(self, profile: Profile, claimed: Iterable[ExternalId]) -> None:
        """Record ``profile`` as new or changed; ``claimed`` identifiers now belong to it."""
        ...

    def retire(self, merge: Merge) -> None:
        """``merge.segment_id`` was merged into ``merge.canonical_segment_id``."""
        ...

    def new_segment_id(self, collection: str) -> str: ...


class SegmentIds:
    """New profiles' ids: prefix + a KSUID whose 16 payload bytes are the nanosecond clock then
    8 random bytes. Ids sort by creation time, so the profiles store's indexes keyed by
    ``segment_id`` take the rows of new (and usually most active) profiles near their end, in
    pages already cached, instead of at random places.

    Within one millisecond the ids count up from the first one drawn in it (still unique and
    still in creation order): most ids then cost a one-digit increment of the previous text
    instead of a 160-bit base62 conversion. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(os.urandom(16))
        self._millisecond = -1
        self._number = 0
        self._text = ""

    def __call__(self, collection: str) -> str:
        now = time.time_ns()
        with self._lock:
            if now // 1_000_000 != self._millisecond:
                self._millisecond = now // 1_000_000
                payload = (now << 64) | self._random.getrandbits(64)
                self._number = ksuid_number(now // 1_000_000_000, payload)
                self._text = base62(self._number)
            else:
                self._number += 1
                last = self._text[-1]
                if last in NEXT_DIGIT:  # no carry: 61 times in 62
                    self._text = self._text[:-1] + NEXT_DIGIT[last]
                else:
                    self._text = base62(self._number)
            return PREFIXES[collection] + self._text


random_segment_id = SegmentIds()
"""The process's generator of new profiles' ids."""


class MemoryState:
    """A :class:`GraphState` in dicts: for tests and as the store's cache."""

    def __init__(self, segment_ids: Callable[[str], str] = random_segment_id) -> None:
        self.owners: dict[ExternalId, str] = {}
        self.profiles: dict[str, Profile] = {}
        self.merged: dict[str, Merge] = {}
        self._segment_ids = segment_ids

    def owner(self, id: ExternalId) -> str | None:
        return self.owners.get(id)

    def profile(self, segment_id: str) -> Profile:
        return self.profiles[segment_id]

    def save(self, profile: Profile, claimed: Iterable[ExternalId]) -> None:
        self.profiles[profile.segment_id] = profile
        for id in claimed:
            self.owners[id] = profile.segment_id

    def retire(self, merge: Merge) -> None:
        self.profiles.pop(merge.segment_id, None)
        self.merged[merge.segment_id] = merge

    def new_segment_id(self, collection: str) -> str:
        return self._segment_ids(collection)

    def canonical(self, segment_id: str) -> str:
        while segment_id in self.merged:
            segment_id = self.merged[segment_id].canonical_segment_id
        return segment_id


def counter_ids() -> Callable[[str], str]:
    """Predictable ids (``use_1``, ``acc_2``…) for tests and examples."""
    count = 0

    def next_id(collection: str) -> str:
        nonlocal count
        count += 1
        return f"{PREFIXES[collection]}{count}"

    return next_id


def _count(items: Iterable[tuple[ExternalId, int]], type: str, since: int | None) -> int:
    return sum(1 for k, t in items if k.type == type and (since is None or t >= since))


def _holds(profile: Profile, ids: Sequence[ExternalId]) -> bool:
    """``profile`` already holds every one of ``ids``."""
    held = profile.identifiers
    for id in ids:  # noqa: SIM110 (a loop, not all() over a generator: see _violation)
        if id not in held:
            return False
    return True


def _one_per_type(rules: Rules, ids: Sequence[ExternalId]) -> bool:
    """``ids`` are of distinct types, each allowed at least one value, and not too many."""
    if len(ids) > rules.max_identifiers:
        return False
    types: set[str] = set()
    for id in ids:
        if id.type in types or rules.limit(id.type).values < 1:
            return False
        types.add(id.type)
    return True


def _violation(
    rules: Rules, profiles: Sequence[Profile], ids: Sequence[ExternalId], at: int
) -> tuple[str, str] | None:
    """The (violation name, rule) the union of ``profiles`` and ``ids`` would break."""
    # (``_holds`` and ``_one_per_type`` rather than ``all(...)`` over a generator: this runs
    # for every event that is not a known visitor, and a generator costs more than the test.)
    if len(profiles) == 1 and _holds(profiles[0], ids):
        return None  # nothing new: the common case of a known visitor
    if not profiles and _one_per_type(rules, ids):
        return None  # a new profile with one value per type
    if len(profiles) > 1:
        merges = sum(p.merges for p in profiles) + len(profiles) - 1
        if merges > rules.max_merges:
            return MERGE_LIMIT, f"at most {rules.max_merges} merges per profile"
    union: dict[ExternalId, int] = {}
    for profile in profiles:
        for key, identifier in profile.identifiers.items():
            union[key] = identifier.created_at
    for id in ids:
        union.setdefault(id, at)
    largest = max((len(p.identifiers) for p in profiles), default=0)
    if len(union) > rules.max_identifiers and len(union) > largest:
        return MAPPING_LIMIT, f"at most {rules.max_identifiers} identifiers per profile"
    by_type: dict[str, list[int]] = {}
    for key, seen in union.items():
        by_type.setdefault(key.type, []).append(seen)
    for type in sorted(by_type, key=rules.rank):
        limit = rules.limit(type)
        times = by_type[type]
        if len(times) <= limit.values:
            continue  # within the limit even counting every value ever seen
        span = WINDOWS[limit.window]
        since = at - span if span is not None else None
        total = len(times) if since is None else sum(1 for t in times if t >= since)
        if total <= limit.values:
            continue
        before = max(
            (
                _count(((k, i.created_at) for k, i in p.identifiers.items()), type, since)
                for p in profiles
            ),
            default=0,
        )
        if total > before:
            name = VALUE_LIMIT if span is None else TIME_LIMIT
            return name, f"{type}: {limit}"
    return None


def resolve(state: GraphState, rules: Rules, event: Event) -> Resolution:
    """Resolve ``event`` into the graph held by ``state``; returns what changed."""
    result = Resolution()
    ids: list[ExternalId] = []
    for id in event.ids:
        (result.blocked if rules.is_blocked(id.value) else ids).append(id)
    group = event.group
    if group is not None and rules.is_blocked(group.value):
        result.blocked.append(group)
        group = None
    if ids:
        result.segment_id = _resolve_user(state, rules, event, ids, result)
    else:
        result.error = NO_IDENTIFIERS
    if group is not None:
        result.account_id = _resolve_account(state, event, group, result)
    return result


def _resolve_user(
    state: GraphState, rules: Rules, event: Event, ids: list[ExternalId], result: Resolution
) -> str:
    # The common case, a known visitor: every identifier is already on one profile (an
    # identifier is on exactly the profile that owns it), so nothing merges, nothing is new and
    # no limit can be raised.
    known = state.owner(ids[0])
    if known is not None:
        profile = state.profile(known)
        if _holds(profile, ids):
            return _place(state, profile, event, ())
    attach_only = False
    while True:
        matches: dict[str, ExternalId] = {}
        for id in ids:
            owner = state.owner(id)
            if owner is not None and owner not in matches:
                matches[owner] = id
        profiles = [state.profile(segment_id) for segment_id in matches]
        violation = _violation(rules, profiles, ids, event.timestamp)
        if violation is None:
            break
        if len(ids) == 1:
            attach_only = True  # the one identifier left still places the event
            result.dropped.append(Drop(ids[0], *violation))
            break
        lowest = max(reversed(ids), key=lambda id: rules.rank(id.type))
        ids.remove(lowest)
        result.dropped.append(Drop(lowest, *violation))
    claimed: list[ExternalId] = []
    if not profiles:
        profile = _new_profile(state, "users", event)
        result.created.append(profile.segment_id)
    else:
        profiles.sort(key=lambda p: (p.created_at, p.segment_id))
        profile = profiles[0]
        for other in profiles[1:]:
            claimed.extend(other.identifiers)  # the survivor's own stay where they are
            via = matches[other.segment_id]
            merge = Merge(
                segment_id=other.segment_id,
                canonical_segment_id=profile.segment_id,
                message_id=event.message_id,
                source_id=event.source_id,
                event_type=event.type,
                timestamp=event.timestamp,
                via=via,
                rule=f"{via.type}: {rules.limit(via.type)}",
            )
            _absorb(state, profile, other)
            state.retire(merge)
            result.merges.append(merge)
    if not attach_only:
        for id in ids:
            if id not in profile.identifiers:
                identifier = Identifier(id, event.source_id, event.message_id, event.timestamp)
                profile.identifiers[id] = identifier
                result.added.append((profile.segment_id, identifier))
                claimed.append(id)
    return _place(state, profile, event, claimed)


def _place(state: GraphState, profile: Profile, event: Event, claimed: Iterable[ExternalId]) -> str:
    """Put ``event`` on ``profile``: its times, an identify's traits; hand the profile back."""
    _touch(profile, event)
    if event.type == "identify":
        profile.changed.update(
            trait_rules.apply(profile.traits, event.traits, event.timestamp, event.source_id)
        )
    state.save(profile, claimed)
    return profile.segment_id


def _resolve_account(state: GraphState, event: Event, group: ExternalId, result: Resolution) -> str:
    owner = state.owner(group)
    claimed: list[ExternalId] = []
    if owner is None:
        account = _new_profile(state, "accounts", event)
        identifier = Identifier(group, event.source_id, event.message_id, event.timestamp)
        account.identifiers[group] = identifier
        result.created.append(account.segment_id)
        result.added.append((account.segment_id, identifier))
        claimed.append(group)
    else:
        account = state.profile(owner)
    _touch(account, event)
    account.changed.update(
        trait_rules.apply(account.traits, event.traits, event.timestamp, event.source_id)
    )
    if result.segment_id is not None:
        user = state.profile(result.segment_id)
        if account.segment_id not in user.links:
            user.links.add(account.segment_id)
            user.relinked = True
            state.save(user, ())
        if result.segment_id not in account.links:
            account.links.add(result.segment_id)
            account.relinked = True
    state.save(account, claimed)
    return account.segment_id


def _new_profile(state: GraphState, collection: str, event: Event) -> Profile:
    return Profile(
        segment_id=state.new_segment_id(collection),
        collection=collection,
        created_at=event.timestamp,
        first_message_id=event.message_id,
        first_source_id=event.source_id,
        updated_at=event.timestamp,
        last_message_id=event.message_id,
        last_source_id=event.source_id,
    )


def _touch(profile: Profile, event: Event) -> None:
    if event.timestamp >= profile.updated_at:
        profile.updated_at = event.timestamp
        profile.last_message_id = event.message_id
        profile.last_source_id = event.source_id
    if event.timestamp < profile.created_at:
        profile.created_at = event.timestamp
        profile.first_message_id = event.message_id
        profile.first_source_id = event.source_id


def _absorb(state: GraphState, profile: Profile, other: Profile) -> None:
    for key, identifier in other.identifiers.items():
        current = profile.identifiers.get(key)
        if current is None or identifier.created_at < current.created_at:
            profile.identifiers[key] = identifier
    trait_rules.combine(profile.traits, other.traits)
    profile.changed.update(profile.traits)
    profile.merges += other.merges + 1
    if other.created_at < profile.created_at:
        profile.created_at = other.created_at
        profile.first_message_id = other.first_message_id
        profile.first_source_id = other.first_source_id
    if other.updated_at > profile.updated_at:
        profile.updated_at = other.updated_at
        profile.last_message_id = other.last_message_id
        profile.last_source_id = other.last_source_id
    for linked in other.links:
        profile.links.add(linked)
        profile.relinked = True
        account = state.profile(linked)
        account.links.discard(other.segment_id)
        account.links.add(profile.segment_id)
        account.relinked = True
        state.save(account, ())
