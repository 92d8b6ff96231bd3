"""Warehouse names the way Segment makes them (reference §7.1-§7.2): pure, no I/O.

Table and column names go through :func:`snakecase`, a re-implementation of the algorithm of
segmentio/go-snakecase, then through the fix-ups Segment applies on Redshift (a ``_`` prefix
for a leading digit or a reserved word) and ours for what Segment leaves undocumented (event
names that collide with a system table or snake-case to nothing; names too long for PostgreSQL).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

MAX_IDENTIFIER = 63
"""PostgreSQL's limit (NAMEDATALEN - 1); longer names would be truncated silently and collide,
so every engine gets names that fit it and a warehouse can move between engines unchanged."""

SYSTEM_TABLES = frozenset(
    {"tracks", "identifies", "users", "pages", "screens", "groups", "accounts", "aliases"}
)

# Redshift's reserved words (Segment prefixes them with `_`, reference §7.2) plus PostgreSQL's
# fully reserved key words, so that names work unquoted on every engine we load.
_RESERVED = """
    aes128 aes256 all allowoverwrite analyse analyze and any array as asc asymmetric
    authorization az64 backup between binary blanksasnull both bytedict bzip2 case cast check
    collate column concurrently constraint create credentials cross current_catalog current_date
    current_role current_schema current_time current_timestamp current_user current_user_id
    default deferrable deflate defrag delta delta32k desc disable distinct do else emptyasnull
    enable encode encrypt encryption end except explicit false fetch for foreign freeze from full
    globaldict256 globaldict64k grant group gzip having identity ignore ilike in initially inner
    intersect interval into is isnull join lateral language leading left like limit localtime
    localtimestamp lun luns lzo lzop minus mostly16 mostly32 mostly8 natural new not notnull null
    nulls off offline offset oid old on only open or order outer overlaps parallel partition
    percent permissions pivot placing primary raw readratio recover references rejectlog resort
    respect restore returning right select session_user similar snapshot some symmetric sysdate
    system table tablesample tag tdes text255 text32k then timestamp to top trailing true
    truncatecolumns union unique unnest unpivot user using variadic verbose wallet when where
    window with without
"""
RESERVED_WORDS = frozenset(_RESERVED.split())


def _word_char(c: str) -> bool:
    return "a" <= c <= "z" or "0" <= c <= "9"


def _upper(c: str) -> bool:
    return "A" <= c <= "Z"


@lru_cache(maxsize=65536)
def snakecase(text: str) -> str:
    """go-snakecase: ASCII letters and digits make words, everything else separates them.

    A word is a run of upper-case letters or digits followed by a run of lower-case letters or
    digits (so ``HTMLParser`` → ``htmlparser``, ``userID`` → ``user_id``); text already made of
    ``[a-z0-9]`` with single inner underscores is returned unchanged.
    """
    n = len(text)
    i = 0
    # Leading run that needs no change: lower-case, digits, and `_` before one of those.
    while i < n and (
        _word_char(text[i]) or (text[i] == "_" and i < n - 1 and _word_char(text[i + 1]))
    ):
        i += 1
    if i == n:
        return text
    if i > 0 and "0" <= text[i - 1] <= "9" and _upper(text[i]):
        # A digit followed by a capital starts the next word (go-snakecase); only then, so
        # `101 Account Update` stays `101_account_update` as Segment's docs show (§7.2).
        i -= 1
    out = [text[:i]] if i else []
    length = i
    while i < n:
        c = text[i]
        if not (_word_char(c) or _upper(c)):
            i += 1
            continue
        if length:
            out.append("_")
        start = len(out)
        while i < n and (_upper(text[i]) or "0" <= text[i] <= "9"):
            i += 1
            out.append(text[i - 1].lower())
        while i < n and _word_char(text[i]):
            i += 1
            out.append(text[i - 1])
        length += len(out) - start
    return "".join(out)


def fit_length(name: str, limit: int = MAX_IDENTIFIER) -> str:
    """``name`` cut to ``limit`` characters with a hash suffix, so two long names stay apart."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}_{digest}"


def _fix(name: str) -> str:
    if name[0].isdigit() or name in RESERVED_WORDS:
        name = "_" + name
    return fit_length(name)


@lru_cache(maxsize=16384)
def event_table(event: str) -> str:
    """The table of a track event: ``Order Completed`` → ``order_completed``.

    A leading digit or a reserved word gets a ``_`` prefix (``_101_account_update``,
    ``_open``), as Segment does on Redshift; so does a name equal to a system table
    (``_pages``). A name with no ASCII letter or digit gets ``_event_`` and a hash of it.
    """
    slug = snakecase(event)
    if not slug:
        return "_event_" + hashlib.sha1(event.encode()).hexdigest()[:8]
    if slug in SYSTEM_TABLES:
        slug = "_" + slug
    return _fix(slug)


@lru_cache(maxsize=65536)
def column(path: str) -> str:
    """A property, trait or context column name from an already snake-cased path."""
    return _fix(path) if path else path


def schema(source_id: str) -> str:
    """The schema of a source (one per source, reference §7.1)."""
    name = snakecase(source_id) or "_source"
    if name.startswith("pg_") or name in {"information_schema", "_mainstem"}:
        name = "_" + name
    return fit_length(name)
