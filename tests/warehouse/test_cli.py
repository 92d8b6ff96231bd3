"""The commands, through the real CLI: sync, query (table, CSV, JSON), history, schema, backfill."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import msgspec
from typer.testing import CliRunner

from mainstem.cli import app
from mainstem.warehouse import service
from mainstem.warehouse.dialects.duckdb import DuckDB
from tests.conftest import ServerWith
from tests.warehouse.conftest import Pipeline
from tests.warehouse.corpus import CORPUS, CORPUS_LOAD

runner = CliRunner()


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_sync_query_history_schema_and_backfill(pipeline: Pipeline, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    pipeline.send(CORPUS)
    _run("warehouse", "sync", "--now", "--data-dir", data)
    sql = "SELECT id, event, event_text FROM web.tracks ORDER BY id"
    assert _run("query", sql, "--data-dir", data, "--csv") == (
        "id,event,event_text\n"
        "t-1,order_completed,Order Completed\n"
        "t-2,order_completed,order_completed\n"
        "t-3,_101_signed_up,101 Signed Up\n"
    )
    lines = _run("query", "SELECT id, received_at FROM web.users", "--data-dir", data, "--json")
    assert [msgspec.json.decode(line) for line in lines.splitlines()] == [
        {"id": "user-1", "received_at": "2024-05-01T10:00:00"}
    ]
    assert "order_completed" in _run("query", sql, "--data-dir", data)
    history = _run("warehouse", "history", "--data-dir", data, "--json").splitlines()
    load = msgspec.json.decode(history[0])
    assert {k: load[k] for k in CORPUS_LOAD} == CORPUS_LOAD
    schema = _run("warehouse", "schema", "--data-dir", data, "--source", "web")
    assert "Columns" in schema and "Schema changes (newest first)" in schema
    users = [
        row for row in service.columns(DuckDB(Path(data) / "warehouse.duckdb")) if row[1] == "users"
    ]
    assert [(column, kind) for _, _, column, kind in users][:5] == [
        ("id", "VARCHAR"),
        ("received_at", "TIMESTAMP"),
        ("uuid_ts", "TIMESTAMP"),
        ("loaded_at", "TIMESTAMP"),
        ("email", "VARCHAR"),
    ]
    result = runner.invoke(app, ["warehouse", "backfill", "--data-dir", data])
    assert result.exit_code == 0, result.output
    assert _run("query", "SELECT count(*) FROM web.tracks", "--data-dir", data, "--csv") == (
        "count_star()\n3\n"
    )


def test_a_bad_query_says_what_the_engine_says(pipeline: Pipeline, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    pipeline.send(CORPUS[:1])
    _run("warehouse", "sync", "--now", "--data-dir", data)
    result = runner.invoke(app, ["query", "SELECT nope FROM web.pages", "--data-dir", data])
    assert result.exit_code == 1
    assert 'Referenced column "nope" not found' in result.stderr


def test_the_server_loads_the_warehouse_and_query_works_while_it_runs(
    server_with: ServerWith,
) -> None:
    server = server_with(MAINSTEM_WAREHOUSE_INTERVAL="0.2")
    response = httpx.post(
        f"{server.url}/v1/batch",
        json={"batch": CORPUS, "sentAt": "2024-05-01T10:00:00.000Z"},
        auth=(server.write_key, ""),
    )
    assert response.status_code == 200
    data = str(server.data_dir)
    deadline = time.monotonic() + 30
    found = ""
    while time.monotonic() < deadline:
        result = runner.invoke(
            app, ["query", "SELECT count(*) FROM web.tracks", "--data-dir", data, "--csv"]
        )
        found = result.stdout
        if result.exit_code == 0 and found.endswith("\n3\n"):
            break
        time.sleep(0.2)
    assert found == "count_star()\n3\n"
