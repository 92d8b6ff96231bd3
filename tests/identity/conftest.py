"""Identity fixtures: the real pipeline (event log → processor → event store) and a real
profiles.db in a tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mainstem.identity.sqlite import SqliteProfileStore
from mainstem.intake import Limits
from mainstem.logrecord import LogRecord
from mainstem.processor import Processor
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

RECEIVED = 1_714_557_600_000_000  # 2024-05-01T10:00:00.000Z


class Pipeline:
    """Sends Segment batches through the real event log and processor into the event store."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.log = SqliteEventLog(root / "log-0.db", fsync=False)
        self.store = SqlitePipelineStore(root / "pipeline.db", fsync=False)
        self.processor = Processor(self.log, self.store, limits=Limits(), dedupe_window=86400)

    def send(self, messages: list[dict[str, Any]], *, source: str = "web") -> None:
        envelope = {"batch": messages, "sentAt": "2024-05-01T10:00:00.000Z"}
        self.log.append([LogRecord(source, RECEIVED, msgspec.json.encode(envelope))])
        self.processor.drain()

    def close(self) -> None:
        self.store.close()
        self.log.close()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(tmp_path / "data")
    yield pipe
    pipe.close()


@pytest.fixture
def profiles(pipeline: Pipeline) -> Iterator[SqliteProfileStore]:
    store = SqliteProfileStore(pipeline.root / "profiles.db", fsync=False)
    yield store
    store.close()
