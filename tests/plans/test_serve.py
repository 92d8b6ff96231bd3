"""End to end through ``mainstem serve``: a source with a tracking plan, enforced in the
processor process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, WRITE_KEY, ServerProcess

PLAN = """\
plan: web
events:
  Order Completed:
    properties:
      order_id: {type: string, required: true}
      total: {type: number, required: true}
"""
WORKSPACE = f"""\
admin_token: {ADMIN_TOKEN}
sources:
  - id: web
    name: Website
    write_key: {WRITE_KEY}
    tracking_plan: plans/web.yaml
    enforcement:
      track:
        unplanned_events: block
        properties_on_violation: omit
      forward_blocked_events_to: audit
  - id: audit
    name: Blocked events
    write_key: test-write-key-audit
destinations: []
settings:
  data_dir: {{data_dir}}
"""


@pytest.fixture
def governed(tmp_path: Path) -> Iterator[ServerProcess]:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "web.yaml").write_text(PLAN, encoding="utf-8")
    config = tmp_path / "mainstem.yaml"
    config.write_text(WORKSPACE.format(data_dir=tmp_path / "data"), encoding="utf-8")
    proc = ServerProcess(config, tmp_path / "data", tmp_path / "server.log")
    proc.start()
    yield proc
    if proc.process is not None and proc.process.poll() is None:
        proc.stop()


def test_serve_enforces_the_sources_plan(governed: ServerProcess) -> None:
    batch = [
        {"type": "track", "event": "Order Completed", "userId": "u", "messageId": "ok",
         "properties": {"order_id": "o1", "total": 5}},
        {"type": "track", "event": "Order Completed", "userId": "u", "messageId": "bad",
         "properties": {"order_id": "o2", "total": "5"}},
        {"type": "track", "event": "Order Complete", "userId": "u", "messageId": "typo"},
    ]  # fmt: skip
    response = httpx.post(
        f"{governed.url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""), timeout=10
    )
    assert response.status_code == 200, response.text
    [blocked] = governed.events(expect=1, source="audit")
    assert (blocked["messageId"], blocked["forwardedFromProject"]) == ("typo", "web")
    web = governed.events(expect=2, source="web")
    assert [m["messageId"] for m in web] == ["ok", "bad"]
    assert web[1]["properties"] == {"order_id": "o2"}
    assert web[1]["context"]["protocols"]["omitted_on_violation"] == ["total"]
