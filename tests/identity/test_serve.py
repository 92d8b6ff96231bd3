"""End to end: ``mainstem serve`` as a subprocess resolves identities in its processor process
and answers the Profile API over a socket."""

from __future__ import annotations

import time

import httpx
import pytest

from ..conftest import ADMIN_TOKEN, WRITE_KEY, ServerProcess
from .helpers import message

pytestmark = pytest.mark.slow


def test_served_profiles(server: ServerProcess) -> None:
    batch = [
        message("page", 1, 0, anonymousId="a1"),
        message("identify", 2, 1, anonymousId="a1", userId="u1", traits={"plan": "pro"}),
    ]
    sent = httpx.post(f"{server.url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert sent.status_code == 200, sent.text
    url = f"{server.url}/v1/spaces/main/collections/users/profiles/anonymous_id:a1/traits"
    deadline = time.monotonic() + 60
    while True:
        response = httpx.get(url, auth=(ADMIN_TOKEN, ""), timeout=10)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        assert response.status_code == 404, response.text
        time.sleep(0.1)
    assert response.status_code == 200, server.log_path.read_text()
    assert response.json()["traits"] == {"plan": "pro"}
    ids = httpx.get(
        url.replace("/traits", "/external_ids"), auth=(ADMIN_TOKEN, ""), timeout=10
    ).json()
    assert sorted((d["type"], d["id"]) for d in ids["data"]) == [
        ("anonymous_id", "a1"),
        ("user_id", "u1"),
    ]
