"""User suppression: the subset of Segment's Regulations API that Mainstem implements
(reference §6.3, §6.4), as plain values and decisions.

A regulation ``SUPPRESS_ONLY`` adds user ids to the suppressed set, ``UNSUPPRESS`` removes them.
The processor drops every message whose ``userId`` is in the set before dedupe and storage, so
a suppressed user's messages reach no stage after it (event store, warehouse, identity,
destinations, the debugger). Matching is by ``userId`` only, as in Segment. Deletion
regulations, ``ANONYMOUS_ID`` and ``OBJECT_ID`` subjects are not supported.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mainstem import timestamps
from mainstem.errors import Unprocessable

SUPPORTED = ("SUPPRESS_ONLY", "UNSUPPRESS")
DELETIONS = (
    "DELETE_ONLY",
    "SUPPRESS_WITH_DELETE",
    "DELETE_INTERNAL",
    "SUPPRESS_WITH_DELETE_INTERNAL",
    "DELETE_ARCHIVE_ONLY",
)
"""Segment's other regulation types: all delete data, which this version does not do."""
SUBJECT_TYPE = "USER_ID"
MAX_SUBJECT_IDS = 5_000  # Segment's limit per call (reference §6.3)
RELOAD_INTERVAL = 1.0
"""Seconds between the processor's checks for a new regulation."""


@dataclass(frozen=True, slots=True)
class Regulation:
    """One stored regulation. It is applied when it is stored, so it is finished then."""

    id: str
    created_at: int
    """µs since the epoch."""
    regulation_type: str
    subject_type: str
    subject_ids: tuple[str, ...]


def new_id() -> str:
    return secrets.token_hex(12)


def parse(body: Any, *, now: int, regulate_id: str | None = None) -> Regulation:
    """The regulation a ``POST /regulations`` body asks for.

    Raises:
        Unprocessable: the body is not a supported regulation; the message says what to fix.
    """
    if not isinstance(body, Mapping):
        raise Unprocessable(
            'the body must be a JSON object: {"regulationType": "SUPPRESS_ONLY", '
            '"subjectType": "USER_ID", "subjectIds": ["user-1"]}'
        )
    kind = body.get("regulationType")
    if kind in DELETIONS:
        raise Unprocessable(
            f"regulationType {kind} is not supported: this version of Mainstem supports only "
            "SUPPRESS_ONLY and UNSUPPRESS (it deletes no data; `mainstem profile delete` "
            "deletes a profile)"
        )
    if kind not in SUPPORTED:
        raise Unprocessable(
            f"regulationType must be SUPPRESS_ONLY or UNSUPPRESS, got {_show(kind)}"
        )
    subject_type = body.get("subjectType")
    if subject_type != SUBJECT_TYPE:
        raise Unprocessable(
            f"subjectType must be USER_ID, got {_show(subject_type)} — suppression matches "
            "messages by userId only (ANONYMOUS_ID and OBJECT_ID are not supported)"
        )
    return Regulation(
        id=regulate_id or new_id(),
        created_at=now,
        regulation_type=kind,
        subject_type=SUBJECT_TYPE,
        subject_ids=subject_ids(body.get("subjectIds")),
    )


def subject_ids(value: Any) -> tuple[str, ...]:
    """Validated user ids, in order, without repeats.

    Raises:
        Unprocessable: not a list of 1 to 5,000 non-empty strings.
    """
    if not isinstance(value, list) or not value:
        raise Unprocessable(
            f"subjectIds must be a non-empty list of user ids, got {_show(value)} — "
            'e.g. "subjectIds": ["user-1"]'
        )
    if len(value) > MAX_SUBJECT_IDS:
        raise Unprocessable(
            f"subjectIds has {len(value)} ids; at most {MAX_SUBJECT_IDS:,} per regulation — "
            "split them over several requests"
        )
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise Unprocessable(
                f"subjectIds[{index}] must be a non-empty string (a userId), got {_show(item)}"
            )
        if "\x00" in item:  # PostgreSQL's text cannot hold it: refused on every backend
            raise Unprocessable(f"subjectIds[{index}] holds a U+0000 character — remove it")
    return tuple(dict.fromkeys(value))


def applied(suppressed: frozenset[str], regulation: Regulation) -> frozenset[str]:
    """The suppressed set after ``regulation``."""
    ids = frozenset(regulation.subject_ids)
    if regulation.regulation_type == "UNSUPPRESS":
        return suppressed - ids
    return suppressed | ids


def is_suppressed(message: Mapping[str, Any], suppressed: frozenset[str]) -> bool:
    """Whether a normalized message (its ``userId`` is a string, or absent) is suppressed."""
    return message.get("userId") in suppressed


class SuppressedUsers:
    """The suppressed user ids as the processor sees them: ``version`` (a cheap change marker)
    is asked at most once per ``interval`` seconds, and the set is loaded again only when the
    marker moved, so the hot path is one set lookup."""

    def __init__(
        self,
        version: Callable[[], int],
        load: Callable[[], frozenset[str]],
        *,
        interval: float = RELOAD_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._version = version
        self._load = load
        self._interval = interval
        self._clock = clock
        self._seen: int | None = None
        self._next_check = float("-inf")
        self.ids: frozenset[str] = frozenset()

    def current(self) -> frozenset[str]:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._interval
            version = self._version()
            if version != self._seen:
                self.ids = self._load()
                self._seen = version
        return self.ids


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


WORKSPACE_ID = "default"
"""Mainstem serves one workspace; Segment's answers name theirs."""


def regulation_json(regulation: Regulation) -> dict[str, Any]:
    """Segment's ``GET /regulations/{regulateId}`` shape. A regulation is applied when stored,
    so it is ``FINISHED`` at once; no destination takes part, so ``streamStatus`` is empty."""
    created = timestamps.format_us(regulation.created_at)
    return {
        "id": regulation.id,
        "workspaceId": WORKSPACE_ID,
        "overallStatus": "FINISHED",
        "createdAt": created,
        "finishedAt": created,
        "regulationType": regulation.regulation_type,
        "subjectType": regulation.subject_type,
        "subjectIds": list(regulation.subject_ids),
        "streamStatus": [],
    }


def suppressed_page(ids: frozenset[str], after: str | None, limit: int) -> dict[str, Any]:
    """One page of the suppressed user ids in sorted order, after the cursor ``after`` (the
    last id of the previous page)."""
    ordered = sorted(ids if after is None else (i for i in ids if i > after))
    page = ordered[:limit]
    more = len(ordered) > limit
    return {
        "suppressed": [{"subjectType": SUBJECT_TYPE, "subjectIds": page}] if page else [],
        "pagination": {"next_cursor": page[-1] if more else None},
    }
