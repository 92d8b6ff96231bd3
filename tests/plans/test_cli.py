"""``mainstem plan check|import|export``, ``mainstem violations`` and
``GET /api/v1/violations`` on a real store filled by the real processor."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mainstem.cli import app
from mainstem.intake import Limits
from mainstem.logrecord import LogRecord
from mainstem.plans import yaml_format
from mainstem.plans.enforcement import Enforcement
from mainstem.plans.governance import SourcePlan
from mainstem.processor import Processor
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from tests.conftest import InProcess

runner = CliRunner()
PLAN = """\
plan: web
events:
  Order Completed:
    properties:
      total: {type: number, required: true}
"""
HOUR = 3_600_000_000
AT = 1_800_000_000_000_000 // HOUR * HOUR  # on an hour boundary


def test_check_import_export(tmp_path: Path) -> None:
    plan = tmp_path / "web.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    result = runner.invoke(app, ["plan", "check", str(plan)])
    assert result.exit_code == 0, result.output
    assert result.output == f'{plan}: tracking plan "web" is valid — 1 event (1 rules)\n'

    exported = tmp_path / "web.json"
    result = runner.invoke(
        app, ["plan", "export", str(plan), "--format", "segment", "-o", str(exported)]
    )
    assert result.exit_code == 0, result.output
    rules = json.loads(exported.read_text())["rules"]
    assert [(r["type"], r["key"], r["version"]) for r in rules] == [("TRACK", "Order Completed", 1)]

    result = runner.invoke(app, ["plan", "import", str(exported)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "plan: web\nevents:\n  Order Completed:\n    properties:\n      total:\n"
        "        type: number\n        required: true\n"
    )


def test_check_reports_the_line_and_the_fix(tmp_path: Path) -> None:
    plan = tmp_path / "web.yaml"
    plan.write_text(PLAN.replace("number", "float"), encoding="utf-8")
    result = runner.invoke(app, ["plan", "check", str(plan)])
    assert result.exit_code == 1
    assert " ".join(result.stderr.split()) == (
        f"Error: {plan}:5: unknown type 'float' (types: string, number, integer, boolean, "
        "object, array, null, any, date-time)"
    )


def fill(data_dir: Path) -> None:
    """Three violations of one event, across two hours, processed by the real processor."""
    data_dir.mkdir()
    log = SqliteEventLog(data_dir / "log-0.db")
    store = SqlitePipelineStore(data_dir / "pipeline.db")
    records = [
        LogRecord(
            source_id="web",
            received_at=AT + hour * HOUR,
            body=json.dumps(
                {"type": "track", "event": "Order Completed", "userId": "u",
                 "messageId": f"m{n}", "properties": {"total": "9"}}
            ).encode(),
            path_type="track",
        )
        for n, hour in enumerate((0, 0, 1))
    ]  # fmt: skip
    log.append(records)
    plans = (SourcePlan("web", "Website", yaml_format.loads(PLAN), Enforcement()),)
    Processor(log, store, limits=Limits(), dedupe_window=86400, plans=plans).drain()
    log.close()
    store.close()


def test_violations_summary_and_json(tmp_path: Path) -> None:
    fill(tmp_path / "data")
    args = ["violations", "--data-dir", str(tmp_path / "data"), "--since", "2020-01-01T00:00:00Z"]
    result = runner.invoke(app, [*args, "--json", "--samples", "1"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["total"] == 3
    assert body["data"] == [
        {
            "source_id": "web",
            "event": "Order Completed",
            "field": "properties.total",
            "type": "Invalid Type",
            "count": 3,
            "last_seen": "2027-01-15T09:00:00.000Z",
            "series": [
                {"at": "2027-01-15T08:00:00.000Z", "count": 2},
                {"at": "2027-01-15T09:00:00.000Z", "count": 1},
            ],
        }
    ]
    [sample] = body["samples"]
    assert (sample["message_id"], sample["description"], sample["payload"]["properties"]) == (
        "m2",
        "Invalid type. Expected: number, given: string",
        {"total": "9"},
    )
    table = runner.invoke(app, [*args, "--field", "properties.total"])
    assert table.exit_code == 0, table.output
    assert "Order Completed" in table.stdout and "3 violations since" in table.stdout
    bad = runner.invoke(app, [*args, "--bucket", "soon"])
    assert bad.exit_code == 1
    assert "bucket='soon' is not a duration — use e.g. 15m, 1h or 1d" in bad.stderr


def test_the_violations_route(inproc: InProcess) -> None:
    inproc.client.post(
        "/v1/track",
        json={"event": "E", "userId": "u"},
        auth=("test-write-key-web", ""),
    )
    inproc.process()
    headers = {"Authorization": "Bearer test-admin-token"}
    response = inproc.client.get("/api/v1/violations", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() | {"since": None} == {
        "since": None,
        "bucket_seconds": 3600,
        "total": 0,
        "data": [],
        "samples": [],
    }
    bad = inproc.client.get("/api/v1/violations?bucket=0m", headers=headers)
    assert bad.status_code == 400
    assert bad.json() == {
        "error": {
            "code": "invalid_bucket",
            "message": "bucket='0m' is not a duration — use e.g. 15m, 1h or 1d",
        }
    }
