"""SQLite-only behaviour of the pipeline store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mainstem.storage import Batch, StoredEvent
from mainstem.storage.sqlite import pipeline
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore


def _batch(offset: int, first: int, count: int) -> Batch:
    batch = Batch(partition="0", offset=offset)
    for i in range(first, first + count):
        event = StoredEvent(f"m{i}", "track", "Viewed", None, f"a{i}", 1_000 + i, b"{}")
        batch.events.append(("web", event))
    return batch


def test_the_dedupe_check_searches_ids_instead_of_scanning_the_window(tmp_path: Path) -> None:
    """Each commit looks up when its ids were last seen. Planned as a scan, that lookup read
    the whole dedupe table once per 400 ids, so commits slowed down as the window filled."""
    store = SqlitePipelineStore(tmp_path / "pipeline.db", fsync=False)
    store.commit(_batch(1, 0, 5_000))
    assert store.commit(_batch(2, 4_990, 20)).duplicates == 10  # the lookup still finds them
    store.close()
    conn = sqlite3.connect(tmp_path / "pipeline.db")
    sql = pipeline._SEEN.format(values="(?, ?), (?, ?)")
    plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ["web"] * 4))
    conn.close()
    assert "SEARCH d USING PRIMARY KEY (source_id=? AND message_id=?)" in plan, plan
    assert "SCAN d" not in plan, plan
