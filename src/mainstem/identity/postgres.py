"""The profiles store on PostgreSQL: the same tables as ``identity/sqlite.py``, in the database
(and schema, by ``search_path``) of the pipeline, under names that do not collide with its
tables (``profile_identifiers``, ``profile_merges``, … and ``profile_counters`` for the
resolver's position and the generation).

As on SQLite, one writer (the resolver's writer thread) commits a batch of graph changes together
with its position in the event store, so a crash replays the batch and never applies it twice.
Every write transaction starts by locking both counter rows (``FOR UPDATE``): writes from any
process are serialized like SQLite's ``BEGIN IMMEDIATE``, and a second resolver that started
from a stale position finds out before it writes anything. Reads use one connection per thread,
so the resolver looks up the next batch while its writer thread commits the last one.

Each table's rows are written in one statement over one JSON array (``jsonb_array_elements``),
as SQLite's store does with ``json_each``: msgspec encodes a batch's rows in about a millisecond
where psycopg takes 15–40 ms per table to adapt them as arrays for ``unnest`` — time the writer
thread holds the GIL the resolver thread needs. (Resolving 100,000 events on two cores shared
with the server: about 50,000 events/s with JSON, 41,000 with binary arrays, 31,000 with text
arrays; SQLite's store about 72,000.)

Text columns are ``COLLATE "C"``: rows come back in the byte order SQLite uses, whatever the
database's collation.

PostgreSQL text cannot hold U+0000, which JSON strings can. Message ids, trait keys, the
identifier value a merge went through and the value of a violation are written with every
U+0000 replaced by U+FFFD (the replacement character), and lookups clean their parameters the
same way, so a NUL finds what was stored for it instead of failing. (Identifier values never
hold a NUL: ``identifiers.py`` rejects them; trait values are JSON text, where a NUL is
escaped; source ids come from configuration.)

A dropped connection (the server restarted or went away) is :class:`RetryLater`; the next call
reconnects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import psycopg

from mainstem.errors import RetryLater
from mainstem.identity.cache import Changes
from mainstem.identity.graph import Merge, Profile
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.rows import (
    Rows,
    fill,
    merge_of,
    profile_of,
    rows_of,
    split_links,
    unmerge_row,
    violation_of,
)
from mainstem.identity.store import (
    PlacedEvent,
    Unmerge,
    Violation,
    check_commit,
    check_split,
)
from mainstem.identity.unmerge import Split
from mainstem.storage.postgres.connection import Connections, Query, connect, migrate

MIGRATIONS = (
    (
        "identity/0001_profiles",
        """
        CREATE TABLE profile_counters (
            stream TEXT COLLATE "C" PRIMARY KEY,
            seq BIGINT NOT NULL
        );
        -- Present from the start, so every write transaction can lock them.
        INSERT INTO profile_counters (stream, seq) VALUES ('events', 0), ('generation', 0);
        CREATE TABLE profiles (
            segment_id TEXT COLLATE "C" PRIMARY KEY,
            collection TEXT COLLATE "C" NOT NULL,
            created_at BIGINT NOT NULL,
            first_message_id TEXT COLLATE "C" NOT NULL,
            first_source_id TEXT COLLATE "C" NOT NULL,
            updated_at BIGINT NOT NULL,
            last_message_id TEXT COLLATE "C" NOT NULL,
            last_source_id TEXT COLLATE "C" NOT NULL,
            merges BIGINT NOT NULL
        );
        CREATE TABLE profile_identifiers (
            type TEXT COLLATE "C" NOT NULL,
            value TEXT COLLATE "C" NOT NULL,
            segment_id TEXT COLLATE "C" NOT NULL,
            source_id TEXT COLLATE "C" NOT NULL,
            first_message_id TEXT COLLATE "C" NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (type, value)
        );
        CREATE INDEX profile_identifiers_segment_id ON profile_identifiers (segment_id);
        CREATE TABLE profile_traits (
            segment_id TEXT COLLATE "C" NOT NULL,
            key TEXT COLLATE "C" NOT NULL,
            value TEXT NOT NULL,  -- JSON text
            updated_at BIGINT NOT NULL,
            source_id TEXT COLLATE "C" NOT NULL,
            removed BIGINT NOT NULL,
            PRIMARY KEY (segment_id, key)
        );
        CREATE TABLE profile_links (
            segment_id TEXT COLLATE "C" NOT NULL,
            linked TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (segment_id, linked)
        );
        CREATE TABLE profile_merges (
            segment_id TEXT COLLATE "C" PRIMARY KEY,
            canonical_segment_id TEXT COLLATE "C" NOT NULL,
            message_id TEXT COLLATE "C" NOT NULL,
            source_id TEXT COLLATE "C" NOT NULL,
            event_type TEXT COLLATE "C" NOT NULL,
            timestamp BIGINT NOT NULL,
            via_type TEXT COLLATE "C" NOT NULL,
            via_value TEXT COLLATE "C" NOT NULL,
            rule TEXT COLLATE "C" NOT NULL
        );
        CREATE INDEX profile_merges_canonical ON profile_merges (canonical_segment_id);
        CREATE TABLE profile_events (
            seq BIGINT PRIMARY KEY,
            segment_id TEXT COLLATE "C" NOT NULL,
            message_id TEXT COLLATE "C" NOT NULL,
            type TEXT COLLATE "C" NOT NULL,
            timestamp BIGINT NOT NULL
        );
        CREATE INDEX profile_events_segment_id ON profile_events (segment_id, seq);
        CREATE TABLE profile_violations (
            seq BIGINT NOT NULL,
            message_id TEXT COLLATE "C" NOT NULL,
            segment_id TEXT COLLATE "C",
            type TEXT COLLATE "C" NOT NULL,
            value TEXT COLLATE "C" NOT NULL,
            reason TEXT COLLATE "C" NOT NULL,
            rule TEXT COLLATE "C" NOT NULL
        );
        CREATE INDEX profile_violations_segment_id ON profile_violations (segment_id, seq);
        CREATE INDEX profile_violations_identifier ON profile_violations (type, value);
        CREATE TABLE profile_unmerges (
            seq BIGINT PRIMARY KEY,
            message_id TEXT COLLATE "C" NOT NULL,
            segment_id TEXT COLLATE "C" NOT NULL,
            canonical_segment_id TEXT COLLATE "C" NOT NULL,
            at BIGINT NOT NULL
        );
        CREATE INDEX profile_unmerges_segment_id ON profile_unmerges (segment_id);
    """,
    ),
)

_WHERE = "profiles in PostgreSQL"
_SCOPE = "this database"
_STREAM = "events"
_GENERATION = "generation"
_KEYS_CHUNK = 50_000
"""Identifiers per query when :meth:`PostgresProfileStore.identifier_keys` pages through them."""
_encode = msgspec.json.Encoder().encode
_LOST = (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout)


@dataclass(frozen=True, slots=True)
class _Table:
    """How one table's rows are written: ``columns`` as ``(name, array type)``; on a conflict
    over ``key`` the row is replaced (SQLite's ``INSERT OR REPLACE``), or kept with
    ``ignore`` (``INSERT OR IGNORE``); no ``key`` is a plain insert. ``clean`` are the
    positions of user-given text columns (see the module docstring on U+0000)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...] = ()
    ignore: bool = False
    clean: tuple[int, ...] = ()

    def insert(self) -> str:
        """The statement inserting the rows of one JSON array of arrays (parameter 1)."""
        names = ", ".join(f'"{name}"' for name, _ in self.columns)
        values = ", ".join(
            f"(r ->> {i})::{type}" if type != "text" else f"r ->> {i}"
            for i, (_, type) in enumerate(self.columns)
        )
        statement = (
            f"INSERT INTO {self.name} ({names}) "
            f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS r"
        )
        if not self.key:
            return statement
        conflict = ", ".join(f'"{name}"' for name in self.key)
        if self.ignore:
            return f"{statement} ON CONFLICT ({conflict}) DO NOTHING"
        updates = ", ".join(
            f'"{name}" = excluded."{name}"' for name, _ in self.columns if name not in self.key
        )
        return f"{statement} ON CONFLICT ({conflict}) DO UPDATE SET {updates}"


_MERGES = _Table(
    "profile_merges",
    (
        ("segment_id", "text"),
        ("canonical_segment_id", "text"),
        ("message_id", "text"),
        ("source_id", "text"),
        ("event_type", "text"),
        ("timestamp", "bigint"),
        ("via_type", "text"),
        ("via_value", "text"),
        ("rule", "text"),
    ),
    key=("segment_id",),
    clean=(2, 7),
)
_PROFILES = _Table(
    "profiles",
    (
        ("segment_id", "text"),
        ("collection", "text"),
        ("created_at", "bigint"),
        ("first_message_id", "text"),
        ("first_source_id", "text"),
        ("updated_at", "bigint"),
        ("last_message_id", "text"),
        ("last_source_id", "text"),
        ("merges", "bigint"),
    ),
    key=("segment_id",),
    clean=(3, 6),
)
_IDENTIFIERS = _Table(
    "profile_identifiers",
    (
        ("type", "text"),
        ("value", "text"),
        ("segment_id", "text"),
        ("source_id", "text"),
        ("first_message_id", "text"),
        ("created_at", "bigint"),
    ),
    key=("type", "value"),
    clean=(4,),
)
_TRAITS = _Table(
    "profile_traits",
    (
        ("segment_id", "text"),
        ("key", "text"),
        ("value", "text"),
        ("updated_at", "bigint"),
        ("source_id", "text"),
        ("removed", "bigint"),
    ),
    key=("segment_id", "key"),
    clean=(1,),
)
_LINKS = _Table(
    "profile_links",
    (("segment_id", "text"), ("linked", "text")),
    key=("segment_id", "linked"),
    ignore=True,
)
_PLACEMENTS = _Table(
    "profile_events",
    (
        ("seq", "bigint"),
        ("segment_id", "text"),
        ("message_id", "text"),
        ("type", "text"),
        ("timestamp", "bigint"),
    ),
    key=("seq",),
    clean=(2,),
)
_VIOLATIONS = _Table(
    "profile_violations",
    (
        ("seq", "bigint"),
        ("message_id", "text"),
        ("segment_id", "text"),
        ("type", "text"),
        ("value", "text"),
        ("reason", "text"),
        ("rule", "text"),
    ),
    clean=(1, 4),
)
_UNMERGES = _Table(
    "profile_unmerges",
    (
        ("seq", "bigint"),
        ("message_id", "text"),
        ("segment_id", "text"),
        ("canonical_segment_id", "text"),
        ("at", "bigint"),
    ),
    key=("seq",),
    clean=(1,),
)


class PostgresProfileStore:
    """Writes from any thread, one at a time, on the store's writer connection; reads on a
    connection of the reading thread.

    ``readonly`` (the Profile API, the CLI) makes the write methods fail an assertion; the
    schema is migrated either way (idempotent, under an advisory lock), so a reader that starts
    before the resolver finds the tables empty rather than missing.

    Raises:
        RetryLater: PostgreSQL is unreachable (on opening, as on every call).
        ConfigError: the URL is malformed, or the database holds migrations this version does
            not know.
    """

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        self.url = url
        self.readonly = readonly
        self._writer: psycopg.Connection[tuple[object, ...]] | None = None
        self._write_lock = threading.Lock()
        try:
            conn = connect(url)
            try:
                migrate(conn, MIGRATIONS)
            except BaseException:
                conn.close()
                raise
        except _LOST as exc:
            raise _unreachable(exc) from exc
        if readonly:
            conn.close()
        else:
            self._writer = conn
        self._readers = Connections(url)
        self._closed = False

    def _conn(self) -> psycopg.Connection[tuple[object, ...]]:
        """This thread's reader connection: it sees what is committed."""
        return self._readers.get()

    def _fetch(self, query: Query, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read on this thread's connection (retried once on a fresh one when the connection
        dropped); text parameters are cleaned of U+0000 like the values written."""
        try:
            return cast("list[tuple[Any, ...]]", self._readers.fetch(query, _cleaned(params)))
        except _LOST as exc:
            raise _unreachable(exc) from exc

    @contextmanager
    def _writing(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """A transaction on the writer connection, one at a time, (re)connecting first when the
        connection was lost."""
        assert not self.readonly, "opened read-only"
        with self._write_lock:
            if self._closed:
                raise RuntimeError("the profiles store is closed")
            try:
                conn = self._writer
                if conn is None or conn.closed or conn.broken:
                    if conn is not None:
                        conn.close()
                    self._writer = conn = connect(self.url)
                with conn.transaction():
                    yield conn
            except _LOST as exc:
                if self._writer is not None:
                    self._writer.close()
                raise _unreachable(exc) from exc

    def position(self) -> int:
        return self._counters()[0]

    def generation(self) -> int:
        return self._counters()[1]

    def _counters(self) -> tuple[int, int]:
        rows: dict[Any, Any] = dict(
            self._fetch(
                "SELECT stream, seq FROM profile_counters WHERE stream = ANY(%s)",
                ([_STREAM, _GENERATION],),
            )
        )
        return int(rows.get(_STREAM, 0)), int(rows.get(_GENERATION, 0))

    def commit(self, changes: Changes, position: int, expected: int) -> None:
        """Atomically write ``changes`` and move the position from ``expected`` to ``position``.

        Raises:
            RetryLater: the position is not ``expected`` (another resolver moved it), the
                generation is not ``changes.generation`` (a profile was deleted meanwhile) or
                PostgreSQL is unreachable; nothing was written and the caller resets its cache.
        """
        with self._writing() as conn:
            current, generation = _lock(conn)
            check_commit(
                _WHERE,
                _SCOPE,
                position=current,
                expected=expected,
                generation=generation,
                resolved=changes.generation,
            )
            _write(conn, changes.rows if changes.rows is not None else rows_of(changes))
            conn.execute(
                "UPDATE profile_counters SET seq = %s WHERE stream = %s", (position, _STREAM)
            )

    def delete(self, segment_id: str) -> int:
        """Delete live profile ``segment_id`` and everything about it: identifiers, traits,
        links, merges into it, its event placements and violations; bump the generation.
        Returns how many profiles (it and those merged into it) were removed.

        Raises:
            RetryLater: PostgreSQL is unreachable; nothing was deleted.
        """
        with self._writing() as conn:
            _lock(conn)
            members = _members(conn, _clean(segment_id))
            _purge(conn, members)
            _bump_generation(conn)
        return len(members)

    def delete_identifier(self, segment_id: str, id: ExternalId) -> bool:
        """Take ``id`` off live profile ``segment_id`` (its traits, events and merges stay);
        ``False`` when the profile does not hold it. Bumps the generation.

        Raises:
            RetryLater: PostgreSQL is unreachable; nothing was changed.
        """
        with self._writing() as conn:
            _lock(conn)
            gone = conn.execute(
                "DELETE FROM profile_identifiers "
                "WHERE type = %s AND value = %s AND segment_id = %s",
                _cleaned((*id, segment_id)),
            ).rowcount
            if gone:
                _bump_generation(conn)
        return bool(gone)

    def split(self, split: Split, *, position: int, generation: int) -> None:
        """Replace the component ``split`` replayed, if the resolver has not moved since.

        Raises:
            RetryLater: the position or generation moved (plan the split again) or
                PostgreSQL is unreachable; nothing was written.
        """
        with self._writing() as conn:
            check_split(_WHERE, _lock(conn), (position, generation))
            _purge(conn, split.removed)
            _write(conn, rows_of(split.changes))
            _insert(conn, _LINKS, split_links(split))
            _insert(conn, _UNMERGES, [unmerge_row(split, time.time_ns() // 1000)])
            _bump_generation(conn)

    def owner(self, id: ExternalId) -> str | None:
        rows = self._fetch(
            "SELECT segment_id FROM profile_identifiers WHERE type = %s AND value = %s", id
        )
        return str(rows[0][0]) if rows else None

    def load(self, segment_id: str) -> Profile | None:
        return self.load_many([segment_id]).get(segment_id)

    def owners(self, ids: Sequence[ExternalId]) -> dict[ExternalId, str]:
        """The live profile of each of ``ids`` that one holds, one query per identifier type."""
        by_type: dict[str, list[str]] = {}
        for id in ids:
            by_type.setdefault(id.type, []).append(id.value)
        found: dict[ExternalId, str] = {}
        for type, values in by_type.items():
            rows = self._fetch(
                "SELECT value, segment_id FROM profile_identifiers "
                "WHERE type = %s AND value = ANY(%s)",
                (type, values),
            )
            for value, segment_id in rows:
                found[ExternalId(type, value)] = segment_id
        return found

    def identifier_keys(self, *, chunk: int = _KEYS_CHUNK) -> Iterator[tuple[str, str]]:
        """Every identifier a live profile holds, as ``(type, value)``, read ``chunk`` at a time
        in key order (so no query holds the whole table, nor a transaction open while the
        caller iterates). An identifier added or removed meanwhile may or may not be listed."""
        rows = self._fetch(
            "SELECT type, value FROM profile_identifiers ORDER BY type, value LIMIT %s", (chunk,)
        )
        while rows:
            yield from cast("list[tuple[str, str]]", rows)
            if len(rows) < chunk:
                return
            last_type, last_value = rows[-1]
            rows = self._fetch(
                "SELECT type, value FROM profile_identifiers WHERE (type, value) > (%s, %s) "
                "ORDER BY type, value LIMIT %s",
                (last_type, last_value, chunk),
            )

    def load_many(self, segment_ids: Sequence[str]) -> dict[str, Profile]:
        """The live profiles among ``segment_ids`` with identifiers, traits and links."""
        wanted = list(segment_ids)
        found = {
            row[0]: profile_of(row)
            for row in self._fetch(
                "SELECT segment_id, collection, created_at, first_message_id, first_source_id, "
                "updated_at, last_message_id, last_source_id, merges FROM profiles "
                "WHERE segment_id = ANY(%s)",
                (wanted,),
            )
        }
        if not found:
            return found
        live = list(found)
        fill(
            found,
            self._fetch(
                "SELECT segment_id, type, value, source_id, first_message_id, created_at "
                "FROM profile_identifiers WHERE segment_id = ANY(%s) "
                "ORDER BY segment_id, created_at, type, value",
                (live,),
            ),
            self._fetch(
                "SELECT segment_id, key, value, updated_at, source_id, removed "
                "FROM profile_traits WHERE segment_id = ANY(%s)",
                (live,),
            ),
            self._fetch(
                "SELECT segment_id, linked FROM profile_links WHERE segment_id = ANY(%s)", (live,)
            ),
        )
        return found

    def canonical(self, segment_id: str) -> str | None:
        seen = set()
        while segment_id not in seen:
            seen.add(segment_id)
            rows = self._fetch(
                "SELECT canonical_segment_id FROM profile_merges WHERE segment_id = %s",
                (segment_id,),
            )
            if not rows:
                break
            segment_id = rows[0][0]
        found = self._fetch("SELECT 1 FROM profiles WHERE segment_id = %s", (segment_id,))
        return segment_id if found else None

    def members(self, segment_id: str) -> list[str]:
        return [row[0] for row in self._fetch(_MEMBERS, (segment_id,))]

    def events(
        self, segment_ids: list[str], *, limit: int, before: int | None = None
    ) -> list[PlacedEvent]:
        params: list[Any] = [segment_ids]
        where = "segment_id = ANY(%s)"
        if before is not None:
            where += " AND seq < %s"
            params.append(before)
        rows = self._fetch(
            "SELECT seq, segment_id, message_id, type, timestamp FROM profile_events "
            f"WHERE {where} ORDER BY seq DESC LIMIT %s",
            (*params, limit),
        )
        return [PlacedEvent(*row) for row in rows]

    def merges(self, segment_ids: list[str]) -> list[Merge]:
        rows = self._fetch(
            "SELECT segment_id, canonical_segment_id, message_id, source_id, event_type, "
            "timestamp, via_type, via_value, rule FROM profile_merges "
            "WHERE canonical_segment_id = ANY(%s) ORDER BY timestamp, segment_id",
            (segment_ids,),
        )
        return [merge_of(row) for row in rows]

    def violations(self, segment_ids: list[str], limit: int = 100) -> list[Violation]:
        rows = self._fetch(
            "SELECT seq, message_id, segment_id, type, value, reason, rule "
            "FROM profile_violations WHERE segment_id = ANY(%s) ORDER BY seq LIMIT %s",
            (segment_ids, limit),
        )
        return [violation_of(row) for row in rows]

    def unmerges(self, segment_ids: list[str]) -> list[Unmerge]:
        rows = self._fetch(
            "SELECT seq, message_id, segment_id, canonical_segment_id, at FROM profile_unmerges "
            "WHERE segment_id = ANY(%s) OR canonical_segment_id = ANY(%s) ORDER BY at, seq",
            (segment_ids, segment_ids),
        )
        return [Unmerge(*row) for row in rows]

    def kept_out(self, id: ExternalId) -> list[str]:
        """Profiles with events that carried ``id`` but were kept from taking it."""
        rows = self._fetch(
            "SELECT DISTINCT segment_id FROM profile_violations WHERE type = %s AND value = %s "
            "AND segment_id IS NOT NULL",
            id,
        )
        return [row[0] for row in rows]

    def count(self) -> dict[str, int]:
        rows = self._fetch(
            "SELECT collection, count(*) FROM profiles GROUP BY collection ORDER BY collection"
        )
        return {collection: n for collection, n in rows}

    def close(self) -> None:
        """Idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._readers.close()
            if self._writer is not None:
                self._writer.close()


_MEMBERS = (
    'WITH RECURSIVE m(id) AS (SELECT %s::text COLLATE "C" UNION SELECT profile_merges.segment_id '
    "FROM profile_merges JOIN m ON profile_merges.canonical_segment_id = m.id) SELECT id FROM m"
)


def _members(conn: psycopg.Connection[tuple[object, ...]], segment_id: str) -> list[str]:
    return [str(row[0]) for row in conn.execute(_MEMBERS, (segment_id,))]


def _lock(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[int, int]:
    """Lock the counter rows until the transaction ends (every write does, always in the same
    order, so writes are serialized and cannot deadlock on them); the position and the
    generation."""
    rows: dict[Any, Any] = dict(
        cast(
            "list[tuple[str, int]]",
            conn.execute(
                "SELECT stream, seq FROM profile_counters WHERE stream = ANY(%s) "
                "ORDER BY stream FOR UPDATE",
                ([_STREAM, _GENERATION],),
            ).fetchall(),
        )
    )
    return int(rows[_STREAM]), int(rows[_GENERATION])


def _bump_generation(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """A resolver that sees the generation move drops its cache and re-resolves its batch."""
    conn.execute("UPDATE profile_counters SET seq = seq + 1 WHERE stream = %s", (_GENERATION,))


def _purge(conn: psycopg.Connection[tuple[object, ...]], members: list[str]) -> None:
    """Delete profiles ``members`` and everything placed on or linked to them."""
    for table in (
        "profile_identifiers",
        "profile_traits",
        "profile_links",
        "profile_events",
        "profile_violations",
    ):
        conn.execute(f"DELETE FROM {table} WHERE segment_id = ANY(%s)", (members,))
    conn.execute("DELETE FROM profile_links WHERE linked = ANY(%s)", (members,))
    conn.execute("DELETE FROM profile_merges WHERE segment_id = ANY(%s)", (members,))
    conn.execute("DELETE FROM profiles WHERE segment_id = ANY(%s)", (members,))


def _write(conn: psycopg.Connection[tuple[object, ...]], rows: Rows) -> None:
    """Each table's rows in one statement (see the module docstring)."""
    if rows.merges:
        # A profile is merged away once; should a batch ever list it twice, the last merge
        # wins, as with SQLite's INSERT OR REPLACE (one upsert cannot change a row twice).
        _insert(conn, _MERGES, list({row[0]: row for row in rows.merges}.values()))
        for table in ("profiles", "profile_traits", "profile_links"):
            conn.execute(f"DELETE FROM {table} WHERE segment_id = ANY(%s)", (rows.retired,))
    # Unique keys by construction (rows.py): profiles and identifiers come from dicts, traits
    # from each profile's set of changed keys, placements one per event.
    _insert(conn, _PROFILES, rows.profiles)
    _insert(conn, _IDENTIFIERS, rows.identifiers)
    _insert(conn, _TRAITS, rows.traits)
    if rows.relinked:
        _insert(conn, _LINKS, rows.links)
        segment_ids, linked = _columns(rows.links, 2)
        conn.execute(
            "DELETE FROM profile_links l WHERE l.segment_id = ANY(%s) AND NOT EXISTS "
            "(SELECT FROM unnest(%s::text[], %s::text[]) AS k(segment_id, linked) "
            "WHERE k.segment_id = l.segment_id AND k.linked = l.linked)",
            (rows.relinked, segment_ids, linked),
        )
    _insert(conn, _PLACEMENTS, rows.placements)
    _insert(conn, _VIOLATIONS, rows.violations)


def _insert(
    conn: psycopg.Connection[tuple[object, ...]], table: _Table, rows: Sequence[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    text = _encode(rows)
    # A NUL is encoded as \u0000 (jsonb refuses it). The test also matches a trait value's
    # escaped \u0000, which is then cleaned of nothing: a rare second encoding, no harm.
    if table.clean and b"\\u0000" in text:
        clean = set(table.clean)
        text = _encode(
            [
                tuple(
                    _clean(v) if i in clean and isinstance(v, str) else v for i, v in enumerate(row)
                )
                for row in rows
            ]
        )
    conn.execute(table.insert().encode(), (text.decode(),))


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _clean(text: str) -> str:
    """``text`` as PostgreSQL can store it: U+0000 becomes U+FFFD (see the module docstring)."""
    return text.replace("\x00", "\ufffd")


def _cleaned_list(values: list[Any]) -> list[Any]:
    if "\x00" not in "".join(v for v in values if v is not None):  # one scan, in C
        return values
    return [_clean(v) if isinstance(v, str) else v for v in values]


def _cleaned(params: Sequence[Any]) -> tuple[Any, ...]:
    """Query parameters with their text, and lists of text, :func:`_clean` ed."""
    out: list[Any] = []
    for param in params:
        if isinstance(param, str):
            param = _clean(param)
        elif isinstance(param, list) and param and isinstance(param[0], str):
            param = _cleaned_list(param)
        out.append(param)
    return tuple(out)


def _unreachable(exc: psycopg.Error) -> RetryLater:
    """A lost connection (no SQLSTATE, or class 08 / 57P: the server went away or is
    restarting) or another operational failure (a deadlock, a cancelled statement), as a retry."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    state = exc.sqlstate
    if state is None or state.startswith(("08", "57P")):
        return RetryLater(
            f"{_WHERE}: the server is unreachable ({reason}) — is PostgreSQL running, and is "
            "database_url right?"
        )
    return RetryLater(f"{_WHERE}: {reason}")
