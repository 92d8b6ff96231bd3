"""The processor: exactly-once outputs whatever the run size, dedupe of SDK retries."""

from __future__ import annotations

import json
from pathlib import Path

from mainstem.intake import Limits
from mainstem.logrecord import LogRecord
from mainstem.processor import Processor
from mainstem.storage import EventQuery, RejectionQuery
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

HOUR = 3_600_000_000


def batch(*messages: dict[str, object], received_at: int = 10 * HOUR) -> LogRecord:
    return LogRecord(
        source_id="web",
        received_at=received_at,
        body=json.dumps({"batch": list(messages)}).encode(),
    )


def traffic() -> list[LogRecord]:
    records = []
    for n in range(30):
        records.append(
            batch(
                {"type": "track", "userId": f"u{n % 4}", "event": "E", "messageId": f"m{n}"},
                {"type": "identify", "anonymousId": f"a{n}"},  # server-assigned messageId
                # an SDK retry of the previous request's first message
                {"type": "track", "userId": "u", "messageId": f"m{max(n - 1, 0)}", "event": "R"},
                {"type": "track", "userId": "u"},  # rejected: no event
                received_at=10 * HOUR + n,
            )
        )
    return records


def run(tmp: Path, batch_records: int) -> tuple[list[bytes], list[str]]:
    log = SqliteEventLog(tmp / "log-0.db")
    store = SqlitePipelineStore(tmp / "pipeline.db")
    log.append(traffic())
    processor = Processor(
        log, store, limits=Limits(), dedupe_window=86400, batch_records=batch_records
    )
    processed = processor.drain()
    assert processed == 30
    assert processor.run_once() == 0
    events = [row.body for row in store.events(EventQuery(after=0, limit=1000))]
    codes = [row.code for row in store.rejections(RejectionQuery(after=0, limit=1000))]
    log.close()
    store.close()
    return events, codes


def test_outputs_do_not_depend_on_run_size(tmp_path: Path) -> None:
    one_by_one = run(tmp_path / "a", 1)
    all_at_once = run(tmp_path / "b", 1000)
    assert one_by_one == all_at_once
    events, codes = one_by_one
    ids = [json.loads(body)["messageId"] for body in events]
    assert len(ids) == len(set(ids)) == 60  # 30 tracks + 30 identifies; retries dropped
    assert codes == ["event_not_defined"] * 30


def test_reprocessing_after_a_lost_commit_gives_the_same_rows(tmp_path: Path) -> None:
    """A crash after reading but before committing: the next processor reads the same records
    from the committed offset and writes them once (assigned messageIds included)."""
    log = SqliteEventLog(tmp_path / "log-0.db")
    log.append(traffic()[:3])
    first_store = SqlitePipelineStore(tmp_path / "first.db")
    Processor(log, first_store, limits=Limits(), dedupe_window=86400).drain()
    second_store = SqlitePipelineStore(tmp_path / "second.db")
    Processor(log, second_store, limits=Limits(), dedupe_window=86400).drain()
    first = [r.body for r in first_store.events(EventQuery(after=0))]
    second = [r.body for r in second_store.events(EventQuery(after=0))]
    assert first == second and len(first) == 6
    for closable in (log, first_store, second_store):
        closable.close()


def test_a_record_that_cannot_be_unpacked_does_not_stall_the_log(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log-0.db")
    store = SqlitePipelineStore(tmp_path / "pipeline.db")
    log.append(
        [
            LogRecord(source_id="web", received_at=HOUR, body=b"\xff not json"),
            batch({"type": "track", "userId": "u", "event": "After"}),
        ]
    )
    Processor(log, store, limits=Limits(), dedupe_window=86400).drain()
    [rejection] = store.rejections(RejectionQuery())
    assert rejection.code == "invalid_json"
    assert rejection.payload == b"\xff not json"
    [stored] = store.events(EventQuery())
    assert json.loads(stored.body)["event"] == "After"
    log.close()
    store.close()
