"""SQLite-only behaviour of the event log."""

from __future__ import annotations

import time
from pathlib import Path

from mainstem.logrecord import LogRecord
from mainstem.storage.sqlite.eventlog import SqliteEventLog


def test_checkpoints_run_off_the_commit_path(tmp_path: Path) -> None:
    path = tmp_path / "log-0.db"
    log = SqliteEventLog(path, checkpoint_interval=0.05)
    body = b"x" * 100_000
    log.append([LogRecord(source_id="web", received_at=i, body=body) for i in range(20)])
    # autocheckpoint is off for the appender: the pages reach the database file only through
    # the checkpoint thread.
    deadline = time.monotonic() + 30
    while path.stat().st_size < 2_000_000:
        assert time.monotonic() < deadline, "the checkpoint thread never copied the WAL"
        time.sleep(0.05)
    log.close()
    log.close()
    reopened = SqliteEventLog(path)
    assert len(reopened.read(0, 100)) == 20
    reopened.close()
