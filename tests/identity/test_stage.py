"""The resolver runs next to the processor: events sent to the server become profiles."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient

from mainstem import config
from mainstem.app import App
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.sqlite import SqliteProfileStore

from ..conftest import WRITE_KEY
from .helpers import message


def test_the_processor_thread_runs_the_resolver(workspace_file: Path, tmp_path: Path) -> None:
    app = App(config.load(workspace_file), processor="thread", reload_interval=0)
    batch = [
        message("page", 1, 0, anonymousId="a1"),
        message("identify", 2, 1, anonymousId="a1", userId="u1", traits={"plan": "pro"}),
    ]
    with TestClient(app) as client:
        response = client.post("/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
        assert response.status_code == 200, response.text
        profiles = SqliteProfileStore(tmp_path / "data" / "profiles.db", readonly=True)
        try:
            deadline = time.monotonic() + 30
            while profiles.position() < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            segment_id = profiles.owner(ExternalId("user_id", "u1"))
            assert segment_id is not None
            profile = profiles.load(segment_id)
            assert profile is not None
            assert sorted(str(k) for k in profile.identifiers) == ["anonymous_id:a1", "user_id:u1"]
            assert {k: t.value for k, t in profile.traits.items()} == {"plan": "pro"}
        finally:
            profiles.close()
