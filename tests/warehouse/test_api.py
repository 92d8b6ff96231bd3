"""``/api/v1/warehouse/*`` on a real server: the load history and the schema, as JSON."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, ServerProcess, wait_for
from tests.warehouse.corpus import CORPUS

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_loads_and_schema(
    workspace_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAINSTEM_WAREHOUSE_INTERVAL", "0.2")
    server = ServerProcess(workspace_file, tmp_path / "data", tmp_path / "server.log")
    server.start()
    try:
        loads = f"{server.url}/api/v1/warehouse/loads"
        assert httpx.get(loads).status_code == 401
        response = httpx.post(
            f"{server.url}/v1/batch",
            json={"batch": CORPUS, "sentAt": "2024-05-01T10:00:00.000Z"},
            auth=(server.write_key, ""),
        )
        assert response.status_code == 200

        def loaded() -> bool:
            answer = httpx.get(loads, headers=AUTH, timeout=20)
            return answer.status_code == 200 and bool(answer.json()["data"])

        wait_for(loaded, 30, "the loader's first load")
        data = httpx.get(loads, headers=AUTH, params={"limit": 5}, timeout=20).json()["data"]
        load = data[0]
        assert {k: load[k] for k in ("stream", "first_seq", "last_seq", "events", "row_count")} == {
            "stream": "events",
            "first_seq": 1,
            "last_seq": 10,
            "events": 10,
            "row_count": 15,
        }
        assert (load["status"], load["error"], load["schema_changes"]) == ("ok", "", 11)

        schema = httpx.get(f"{server.url}/api/v1/warehouse/schema", headers=AUTH, timeout=20)
        body = schema.json()
        tables = {(t["schema"], t["table"]): t["columns"] for t in body["tables"]}
        assert {("web", "tracks"), ("web", "users"), ("web", "identifies")} <= set(tables)
        assert {"name": "id", "type": "VARCHAR"} in tables[("web", "tracks")]
        assert len(body["changes"]) == 11
        assert {c["schema_name"] for c in body["changes"]} == {"web"}
        assert httpx.get(loads, headers=AUTH, params={"limit": 0}).status_code == 400
    finally:
        server.stop()


def test_a_workspace_without_a_warehouse_says_how_to_turn_it_on(
    workspace_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAINSTEM_WAREHOUSE", "none")
    server = ServerProcess(workspace_file, tmp_path / "data", tmp_path / "server.log")
    server.start()
    try:
        response = httpx.get(f"{server.url}/api/v1/warehouse/schema", headers=AUTH)
        assert response.status_code == 404
        assert response.json()["error"] == {
            "code": "warehouse_off",
            "message": "the warehouse is off (settings.warehouse: none) — set it to duckdb or a "
            "postgresql:// URL",
        }
    finally:
        server.stop()
