"""The profiles store on SQLite: ``<data_dir>/profiles.db``.

One writer (the resolver thread) commits a batch of graph changes together with its position in
the event store, so a crash replays the batch and never applies it twice. Readers (the Profile
API, the CLI) use their own connections.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

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
from mainstem.storage.sqlite.connection import Readers, connect, migrate, transaction

FILE_NAME = "profiles.db"

MIGRATIONS = (
    (
        "0001_profiles",
        """
        CREATE TABLE position (
            stream TEXT PRIMARY KEY,
            seq INTEGER NOT NULL
        );
        CREATE TABLE profiles (
            segment_id TEXT PRIMARY KEY,
            collection TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            first_message_id TEXT NOT NULL,
            first_source_id TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            last_message_id TEXT NOT NULL,
            last_source_id TEXT NOT NULL,
            merges INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE identifiers (
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            segment_id TEXT NOT NULL,
            source_id TEXT NOT NULL,
            first_message_id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (type, value)
        ) WITHOUT ROWID;
        CREATE INDEX identifiers_segment_id ON identifiers (segment_id);
        CREATE TABLE traits (
            segment_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value BLOB NOT NULL,
            updated_at INTEGER NOT NULL,
            source_id TEXT NOT NULL,
            removed INTEGER NOT NULL,
            PRIMARY KEY (segment_id, key)
        ) WITHOUT ROWID;
        CREATE TABLE links (
            segment_id TEXT NOT NULL,
            linked TEXT NOT NULL,
            PRIMARY KEY (segment_id, linked)
        ) WITHOUT ROWID;
        CREATE TABLE merges (
            segment_id TEXT PRIMARY KEY,
            canonical_segment_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            source_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            timestamp INTEGER NOT NULL,
            via_type TEXT NOT NULL,
            via_value TEXT NOT NULL,
            rule TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX merges_canonical ON merges (canonical_segment_id);
        CREATE TABLE profile_events (
            seq INTEGER PRIMARY KEY,
            segment_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            type TEXT NOT NULL,
            timestamp INTEGER NOT NULL
        );
        CREATE INDEX profile_events_segment_id ON profile_events (segment_id, seq);
        CREATE TABLE violations (
            seq INTEGER NOT NULL,
            message_id TEXT NOT NULL,
            segment_id TEXT,
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            reason TEXT NOT NULL,
            rule TEXT NOT NULL
        );
        CREATE INDEX violations_segment_id ON violations (segment_id, seq)
    """,
    ),
    (
        "0002_unmerges",
        """
        CREATE TABLE unmerges (
            seq INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL,
            segment_id TEXT NOT NULL,
            canonical_segment_id TEXT NOT NULL,
            at INTEGER NOT NULL
        );
        CREATE INDEX unmerges_segment_id ON unmerges (segment_id);
        CREATE INDEX violations_identifier ON violations (type, value)
    """,
    ),
)

_WHERE = "profiles.db"
_STREAM = "events"
_CACHE_KIB = 64 * 1024
_CHUNK = 500
"""Host parameters per ``IN (...)`` lookup: well under SQLite's limit."""
_GENERATION = "generation"
_encode = msgspec.json.Encoder().encode


class SqliteProfileStore:
    """Writes come from the one resolver thread; reads from any thread (own connections)."""

    def __init__(self, path: Path, *, fsync: bool = True, readonly: bool = False) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        if not readonly:
            self._writer = connect(path, fsync=fsync)
            # The resolver inserts into four random-keyed indexes per batch; SQLite's default
            # 2 MiB page cache makes most of those inserts read their page back from the OS.
            self._writer.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            migrate(self._writer, MIGRATIONS)
        self._readers = Readers(path)
        self._closed = False

    def _reader(self) -> sqlite3.Connection:
        return self._readers.get()

    def _conn(self) -> sqlite3.Connection:
        """This thread's reader: it sees what is committed. (Never the writer: the resolver
        looks up the next batch while a writer thread commits the last one.)"""
        return self._reader()

    def position(self) -> int:
        return _counter(self._conn(), _STREAM)

    def generation(self) -> int:
        return _counter(self._conn(), _GENERATION)

    def delete(self, segment_id: str) -> int:
        assert self._writer is not None, "opened read-only"
        members = self.members(segment_id)
        with transaction(self._writer) as conn:
            _purge(conn, members)
            _bump_generation(conn)
        return len(members)

    def delete_identifier(self, segment_id: str, id: ExternalId) -> bool:
        """Take ``id`` off live profile ``segment_id`` (its traits, events and merges stay);
        ``False`` when the profile does not hold it. Bumps the generation."""
        assert self._writer is not None, "opened read-only"
        try:
            with transaction(self._writer) as conn:
                gone = conn.execute(
                    "DELETE FROM identifiers WHERE type = ? AND value = ? AND segment_id = ?",
                    (*id, segment_id),
                ).rowcount
                if gone:
                    _bump_generation(conn)
        except sqlite3.OperationalError as exc:
            raise RetryLater(f"profiles.db: {exc}") from exc
        return bool(gone)

    def split(self, split: Split, *, position: int, generation: int) -> None:
        """Replace the component ``split`` replayed, if the resolver has not moved since.

        Raises:
            RetryLater: the position or generation moved (plan the split again) or the
                database is busy; nothing was written.
        """
        assert self._writer is not None, "opened read-only"
        try:
            with transaction(self._writer) as conn:
                counters = (_counter(conn, _STREAM), _counter(conn, _GENERATION))
                check_split(_WHERE, counters, (position, generation))
                _purge(conn, split.removed)
                _write(conn, rows_of(split.changes))
                conn.executemany("INSERT OR IGNORE INTO links VALUES (?, ?)", split_links(split))
                conn.execute(
                    "INSERT OR REPLACE INTO unmerges VALUES (?, ?, ?, ?, ?)",
                    unmerge_row(split, time.time_ns() // 1000),
                )
                _bump_generation(conn)
        except sqlite3.OperationalError as exc:
            raise RetryLater(f"profiles.db: {exc}") from exc

    def owner(self, id: ExternalId) -> str | None:
        row = (
            self._conn()
            .execute("SELECT segment_id FROM identifiers WHERE type = ? AND value = ?", id)
            .fetchone()
        )
        return str(row[0]) if row else None

    def load(self, segment_id: str) -> Profile | None:
        return self.load_many([segment_id]).get(segment_id)

    def owners(self, ids: Sequence[ExternalId]) -> dict[ExternalId, str]:
        """The live profile of each of ``ids`` that one holds, in a few queries."""
        conn = self._conn()
        by_type: dict[str, list[str]] = {}
        for id in ids:
            by_type.setdefault(id.type, []).append(id.value)
        found: dict[ExternalId, str] = {}
        # ``type = ? AND value IN (...)`` walks the primary key; a row-value IN does not.
        for type, values in by_type.items():
            for start in range(0, len(values), _CHUNK):
                chunk = values[start : start + _CHUNK]
                rows = conn.execute(
                    "SELECT value, segment_id FROM identifiers "
                    f"WHERE type = ? AND value IN ({','.join('?' * len(chunk))})",
                    (type, *chunk),
                )
                for value, segment_id in rows:
                    found[ExternalId(type, value)] = segment_id
        return found

    def identifier_keys(self) -> Iterator[tuple[str, str]]:
        rows: Iterator[tuple[str, str]] = self._conn().execute(
            "SELECT type, value FROM identifiers"
        )
        return rows

    def load_many(self, segment_ids: Sequence[str]) -> dict[str, Profile]:
        """The live profiles among ``segment_ids`` with identifiers, traits and links."""
        conn = self._conn()
        found: dict[str, Profile] = {}
        for start in range(0, len(segment_ids), _CHUNK):
            chunk = segment_ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(
                "SELECT segment_id, collection, created_at, first_message_id, first_source_id, "
                "updated_at, last_message_id, last_source_id, merges FROM profiles "
                f"WHERE segment_id IN ({marks})",
                chunk,
            ):
                found[row[0]] = profile_of(row)
            if not found:
                continue
            fill(
                found,
                conn.execute(
                    "SELECT segment_id, type, value, source_id, first_message_id, created_at "
                    f"FROM identifiers WHERE segment_id IN ({marks}) "
                    "ORDER BY segment_id, created_at, type, value",
                    chunk,
                ),
                conn.execute(
                    "SELECT segment_id, key, value, updated_at, source_id, removed FROM traits "
                    f"WHERE segment_id IN ({marks})",
                    chunk,
                ),
                conn.execute(
                    f"SELECT segment_id, linked FROM links WHERE segment_id IN ({marks})", chunk
                ),
            )
        return found

    def commit(self, changes: Changes, position: int, expected: int) -> None:
        assert self._writer is not None, "opened read-only"
        try:
            with transaction(self._writer) as conn:
                check_commit(
                    _WHERE,
                    "this data directory",
                    position=_counter(conn, _STREAM),
                    expected=expected,
                    generation=_counter(conn, _GENERATION),
                    resolved=changes.generation,
                )
                _write(conn, changes.rows if changes.rows is not None else rows_of(changes))
                conn.execute(
                    "INSERT INTO position (stream, seq) VALUES (?, ?) "
                    "ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq",
                    (_STREAM, position),
                )
        except sqlite3.OperationalError as exc:
            raise RetryLater(f"profiles.db: {exc}") from exc

    def canonical(self, segment_id: str) -> str | None:
        conn = self._conn()
        seen = set()
        while segment_id not in seen:
            seen.add(segment_id)
            row = conn.execute(
                "SELECT canonical_segment_id FROM merges WHERE segment_id = ?", (segment_id,)
            ).fetchone()
            if row is None:
                break
            segment_id = row[0]
        found = conn.execute(
            "SELECT 1 FROM profiles WHERE segment_id = ?", (segment_id,)
        ).fetchone()
        return segment_id if found else None

    def members(self, segment_id: str) -> list[str]:
        rows = self._conn().execute(
            "WITH RECURSIVE m(id) AS (SELECT ? UNION "
            "SELECT merges.segment_id FROM merges JOIN m ON merges.canonical_segment_id = m.id) "
            "SELECT id FROM m",
            (segment_id,),
        )
        return [row[0] for row in rows]

    def events(
        self, segment_ids: list[str], *, limit: int, before: int | None = None
    ) -> list[PlacedEvent]:
        marks = ",".join("?" * len(segment_ids))
        params: list[Any] = [*segment_ids]
        where = f"segment_id IN ({marks})"
        if before is not None:
            where += " AND seq < ?"
            params.append(before)
        rows = self._conn().execute(
            "SELECT seq, segment_id, message_id, type, timestamp FROM profile_events "
            f"WHERE {where} ORDER BY seq DESC LIMIT ?",
            (*params, limit),
        )
        return [PlacedEvent(*row) for row in rows]

    def merges(self, segment_ids: list[str]) -> list[Merge]:
        marks = ",".join("?" * len(segment_ids))
        rows = self._conn().execute(
            "SELECT segment_id, canonical_segment_id, message_id, source_id, event_type, "
            f"timestamp, via_type, via_value, rule FROM merges "
            f"WHERE canonical_segment_id IN ({marks}) ORDER BY timestamp, segment_id",
            segment_ids,
        )
        return [merge_of(row) for row in rows]

    def violations(self, segment_ids: list[str], limit: int = 100) -> list[Violation]:
        marks = ",".join("?" * len(segment_ids))
        rows = self._conn().execute(
            "SELECT seq, message_id, segment_id, type, value, reason, rule FROM violations "
            f"WHERE segment_id IN ({marks}) ORDER BY seq LIMIT ?",
            (*segment_ids, limit),
        )
        return [violation_of(row) for row in rows]

    def unmerges(self, segment_ids: list[str]) -> list[Unmerge]:
        marks = ",".join("?" * len(segment_ids))
        rows = self._conn().execute(
            "SELECT seq, message_id, segment_id, canonical_segment_id, at FROM unmerges "
            f"WHERE segment_id IN ({marks}) OR canonical_segment_id IN ({marks}) ORDER BY at, seq",
            (*segment_ids, *segment_ids),
        )
        return [Unmerge(*row) for row in rows]

    def kept_out(self, id: ExternalId) -> list[str]:
        """Profiles with events that carried ``id`` but were kept from taking it."""
        rows = self._conn().execute(
            "SELECT DISTINCT segment_id FROM violations WHERE type = ? AND value = ? "
            "AND segment_id IS NOT NULL",
            id,
        )
        return [row[0] for row in rows]

    def count(self) -> dict[str, int]:
        rows = self._conn().execute(
            "SELECT collection, count(*) FROM profiles GROUP BY collection ORDER BY collection"
        )
        return {collection: n for collection, n in rows}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._readers.close()
        if self._writer is not None:
            self._writer.close()


def _purge(conn: sqlite3.Connection, members: list[str]) -> None:
    """Delete profiles ``members`` and everything placed on or linked to them."""
    marks = ",".join("?" * len(members))
    for table in ("identifiers", "traits", "links", "profile_events", "violations"):
        conn.execute(f"DELETE FROM {table} WHERE segment_id IN ({marks})", members)
    conn.execute(f"DELETE FROM links WHERE linked IN ({marks})", members)
    conn.execute(f"DELETE FROM merges WHERE segment_id IN ({marks})", members)
    conn.execute(f"DELETE FROM profiles WHERE segment_id IN ({marks})", members)


def _counter(conn: sqlite3.Connection, stream: str) -> int:
    """The resolver position (``_STREAM``) or the generation (``_GENERATION``)."""
    found = conn.execute("SELECT seq FROM position WHERE stream = ?", (stream,)).fetchone()
    return int(found[0]) if found else 0


def _bump_generation(conn: sqlite3.Connection) -> None:
    """A resolver that sees the generation move drops its cache and re-resolves its batch."""
    conn.execute(
        "INSERT INTO position (stream, seq) VALUES (?, 1) "
        "ON CONFLICT (stream) DO UPDATE SET seq = seq + 1",
        (_GENERATION,),
    )


def _write(conn: sqlite3.Connection, rows: Rows) -> None:
    """Each table's rows in one statement over a JSON array (``json_each``): SQLite runs the
    whole insert without Python's GIL, so the resolver thread resolves the next batch
    meanwhile (``executemany`` would take the GIL back for every row)."""
    if rows.merges:
        _insert(conn, "INSERT OR REPLACE INTO merges", rows.merges, 9)
        for table in ("profiles", "traits", "links"):
            conn.execute(
                f"DELETE FROM {table} WHERE segment_id IN (SELECT value FROM json_each(?))",
                (_json(rows.retired),),
            )
    _insert(conn, "INSERT OR REPLACE INTO profiles", rows.profiles, 9)
    _insert(conn, "INSERT OR REPLACE INTO identifiers", rows.identifiers, 6)
    _insert(conn, "INSERT OR REPLACE INTO traits", rows.traits, 6, blob=2)
    if rows.relinked:
        _insert(conn, "INSERT OR IGNORE INTO links", rows.links, 2)
        conn.execute(
            "DELETE FROM links WHERE segment_id IN (SELECT value FROM json_each(?)) "
            "AND (segment_id, linked) NOT IN "
            "(SELECT value ->> 0, value ->> 1 FROM json_each(?))",
            (_json(rows.relinked), _json(rows.links)),
        )
    _insert(conn, "INSERT OR REPLACE INTO profile_events", rows.placements, 5)
    _insert(conn, "INSERT INTO violations", rows.violations, 7)


def _json(values: Sequence[object]) -> str:
    return _encode(values).decode()


def _insert(
    conn: sqlite3.Connection,
    insert: str,
    rows: Sequence[tuple[Any, ...]],
    columns: int,
    *,
    blob: int | None = None,
) -> None:
    """``insert`` (``INSERT … INTO table``) ``rows`` of ``columns`` values in one statement;
    column ``blob`` holds JSON text stored as a BLOB."""
    if not rows:
        return
    values = ", ".join(
        f"CAST(value ->> {i} AS BLOB)" if i == blob else f"value ->> {i}" for i in range(columns)
    )
    conn.execute(f"{insert} SELECT {values} FROM json_each(?)", (_json(rows),))
