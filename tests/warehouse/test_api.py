"""``/api/v1/warehouse/*`` on a real server: the load history and the schema, as JSON."""

from __future__ import annotations

import httpx

from tests.conftest import ADMIN_TOKEN, ServerWith, wait_for
from tests.warehouse.corpus import CORPUS, CORPUS_LOAD

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_loads_and_schema(server_with: ServerWith) -> None:
    server = server_with(MAINSTEM_WAREHOUSE_INTERVAL="0.2")
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
    assert {k: load[k] for k in CORPUS_LOAD} == CORPUS_LOAD
    assert load["error"] == ""

    body = httpx.get(f"{server.url}/api/v1/warehouse/schema", headers=AUTH, timeout=20).json()
    tables = {(t["schema"], t["table"]): t["columns"] for t in body["tables"]}
    assert {("web", "tracks"), ("web", "users"), ("web", "identifies")} <= set(tables)
    assert {"name": "id", "type": "VARCHAR"} in tables[("web", "tracks")]
    assert len(body["changes"]) == 11
    assert {c["schema_name"] for c in body["changes"]} == {"web"}
    assert httpx.get(loads, headers=AUTH, params={"limit": 0}).status_code == 400


def test_a_workspace_without_a_warehouse_says_how_to_turn_it_on(server_with: ServerWith) -> None:
    server = server_with(MAINSTEM_WAREHOUSE="none")
    response = httpx.get(f"{server.url}/api/v1/warehouse/schema", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "warehouse_off",
        "message": "the warehouse is off (settings.warehouse: none) — set it to duckdb or a "
        "postgresql:// URL",
    }
