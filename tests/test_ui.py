"""The web UI (``/ui``): served by the admin API, driven for real in Debian's Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import (
    ADMIN_TOKEN,
    WRITE_KEY,
    InProcess,
    ServerProcess,
    ServerWith,
    wait_for,
)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_the_page_and_its_assets_are_served(inproc: InProcess) -> None:
    page = inproc.client.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script src="/ui/app.js">' in page.text
    script = inproc.client.get("/ui/app.js")
    assert (script.status_code, script.headers["content-type"]) == (
        200,
        "text/javascript; charset=utf-8",
    )
    assert inproc.client.get("/ui/style.css").headers["content-type"].startswith("text/css")
    missing = inproc.client.get("/ui/secrets.txt")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no UI file 'secrets.txt' — open /ui"


def test_sources_lists_write_keys_and_totals(inproc: InProcess) -> None:
    assert inproc.client.get("/api/v1/sources").status_code == 401
    batch = [
        {"type": "track", "event": "Signed Up", "userId": "u1"},
        {"type": "identify", "userId": "u1"},
        {"type": "track", "userId": "u1"},  # no event name: rejected
    ]
    assert inproc.client.post("/v1/batch", json={"writeKey": WRITE_KEY, "batch": batch}).is_success
    inproc.process()
    data = inproc.client.get("/api/v1/sources", headers=AUTH).json()["data"]
    assert [(s["id"], s["enabled"]) for s in data] == [
        ("web", True),
        ("backend", True),
        ("old", False),
    ]
    web = data[0]
    assert (web["write_key"], web["events_stored"], web["events_rejected"]) == (WRITE_KEY, 2, 1)
    assert (web["events_blocked"], web["tracking_plan"]) == (0, None)
    assert data[1]["events_stored"] == 0


@pytest.fixture
def page() -> Iterator[Page]:
    executable = shutil.which("chromium")
    assert executable is not None, "chromium is not on PATH — `make chromium` installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_a_person_signs_in_and_watches_events_arrive(server: ServerProcess, page: Page) -> None:
    page.goto(f"{server.url}/ui")
    expect(page.locator("#health")).to_contain_text("ok")
    page.fill("#token", "not-the-token")
    page.click("text=Open")
    expect(page.locator("#login-error")).to_contain_text("That admin token was refused")
    page.fill("#token", ADMIN_TOKEN)
    page.click("text=Open")
    expect(page.locator("main table")).to_contain_text(WRITE_KEY)  # the sources view

    page.click("text=Live events")
    sent = {"writeKey": WRITE_KEY, "event": "Checkout Started", "userId": "ui-user"}
    assert httpx.post(f"{server.url}/v1/track", json=sent).status_code == 200
    row = page.locator("main tbody tr", has_text="Checkout Started")
    expect(row).to_contain_text("ui-user")  # refreshed every 2 s, without a reload
    row.click()
    expect(page.locator("#detail-json")).to_contain_text('"userId": "ui-user"')

    page.click("#close-detail")
    page.click("text=Rejections")
    bad = {"writeKey": WRITE_KEY, "batch": [{"type": "track", "userId": "ui-user"}]}
    assert httpx.post(f"{server.url}/v1/batch", json=bad).status_code == 200
    expect(page.locator("main")).to_contain_text("Nothing yet.")
    wait_for(lambda: bool(server_rejections(server)), 10, "the processor to record it")
    page.reload()  # the token is remembered by this browser
    expect(page.locator("main table")).to_contain_text("event_not_defined")


def server_rejections(server: ServerProcess) -> list[object]:
    response = httpx.get(f"{server.url}/api/v1/rejections", headers=AUTH)
    data: list[object] = response.json()["data"]
    return data


def test_a_person_looks_up_a_profile_by_any_identifier(server: ServerProcess, page: Page) -> None:
    batch = [
        {"type": "track", "event": "Viewed Pricing", "anonymousId": "anon-7"},
        {
            "type": "identify",
            "userId": "ui-42",
            "anonymousId": "anon-7",
            "traits": {"email": "ada@example.com", "plan": "pro"},
        },
    ]
    assert httpx.post(f"{server.url}/v1/batch", json={"writeKey": WRITE_KEY, "batch": batch})
    profiles = f"{server.url}/v1/spaces/s/collections/users/profiles/user_id:ui-42/traits"
    wait_for(
        lambda: httpx.get(profiles, auth=(ADMIN_TOKEN, "")).status_code == 200,
        20,
        "identity to resolve the batch",
    )
    page.goto(f"{server.url}/ui#profiles")
    page.fill("#token", ADMIN_TOKEN)
    page.click("text=Open")
    page.fill("#profile-id", "email:nobody@example.com")
    page.click("text=Look up")
    expect(page.locator("main .error")).to_contain_text(
        "No profile has the identifier email:nobody@example.com"
    )

    page.fill("#profile-id", "email:ada@example.com")
    page.click("text=Look up")
    main = page.locator("main")
    expect(main).to_contain_text('"pro"')  # the traits
    for identifier in ("ui-42", "anon-7", "ada@example.com"):
        expect(main.locator("table", has_text="First seen")).to_contain_text(identifier)
    events = main.locator("table", has_text="Event / name").locator("tbody tr")
    expect(events).to_have_count(2)  # the anonymous page view is the same person's
    events.filter(has_text="Viewed Pricing").click()
    detail = page.locator("#detail-json")
    expect(detail).to_contain_text('"event": "Viewed Pricing"')
    expect(detail).to_contain_text('"id": "anon-7"')  # the identifier that tied it to ui-42
    assert page.locator("#profile-segment-id").inner_text().startswith("use_")


def test_a_person_sees_the_warehouse_loads_and_tables(server_with: ServerWith, page: Page) -> None:
    server = server_with(MAINSTEM_WAREHOUSE_INTERVAL="0.2")
    sent = {"writeKey": WRITE_KEY, "event": "Order Completed", "userId": "wh-user"}
    assert httpx.post(f"{server.url}/v1/track", json=sent).status_code == 200
    page.goto(f"{server.url}/ui#warehouse")
    page.fill("#token", ADMIN_TOKEN)
    page.click("text=Open")
    tables = page.locator("main table", has_text="Columns")
    for _ in range(50):  # the view shows what is loaded when it opens: reload until then
        if tables.count() and "web.order_completed" in tables.inner_text():
            break
        page.wait_for_timeout(200)
        page.reload()
    expect(tables).to_contain_text("web.tracks")
    expect(tables).to_contain_text("web.order_completed")
    expect(page.locator("main table", has_text="Rows")).to_contain_text("ok")
    tables.locator("tr", has_text="web.tracks").click()
    expect(page.locator("#detail-json")).to_contain_text('"name": "event_text"')
