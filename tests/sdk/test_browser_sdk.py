"""The unmodified analytics.js 2.0 bundle (@segment/analytics-next 1.84.3) in headless Chromium.

The test page and the UMD bundle are served by a small HTTP server of our own on another port, so
every request from the page to Mainstem is cross-origin: the settings fetch
(``GET /v1/projects/<key>/settings``, reference §5.3) and the event POSTs, whose ``Authorization``
header makes Chromium send a CORS preflight first (reference §1.4). The browser is Debian's
``chromium`` driven by Playwright over CDP; Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import CDPSession, Page, sync_playwright

from tests.conftest import WRITE_KEY, ServerProcess

pytestmark = pytest.mark.sdk

JS = Path(__file__).resolve().parent.parent / "js"
PAGE = JS / "page.html"
UMD = JS / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MESSAGE_ID = re.compile(r"^ajs-next-\d{13}-[0-9a-f-]{36}$")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BASIC = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
QUERY = "?utm_source=sdk-test&utm_campaign=mainstem"


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    """``/page.html`` is the test page; every other path is a file of the UMD bundle."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(UMD), **kwargs)

    def translate_path(self, path: str) -> str:
        if urlsplit(path).path == "/page.html":
            return str(PAGE)
        return super().translate_path(path)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    """The origin serving the test page: loopback, on a port other than Mainstem's."""
    assert (UMD / "index.js").exists(), (
        f"{UMD / 'index.js'} is missing — run `make node` (npm ci in tests/js) first"
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SiteHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


@dataclass
class Exchange:
    """One request the page made, as Chromium's network stack saw it (CDP ``Network`` domain)."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Network:
    """Requests, responses and CORS preflights of a page, recorded over CDP.

    Playwright's ``page.on("request")`` does not report preflights; CDP does, as responses of
    type ``Preflight``.
    """

    cdp: CDPSession
    exchanges: dict[str, Exchange] = field(default_factory=dict)
    preflights: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cdp.on("Network.requestWillBeSent", self._request)
        self.cdp.on("Network.responseReceived", self._response)
        self.cdp.send("Network.enable")

    def _request(self, event: dict[str, Any]) -> None:
        request = event["request"]
        self.exchanges[event["requestId"]] = Exchange(
            request["method"], request["url"], _lower(request["headers"]), request.get("postData")
        )

    def _response(self, event: dict[str, Any]) -> None:
        response = event["response"]
        if event.get("type") == "Preflight":
            exchange = Exchange("OPTIONS", response["url"], {}, None)
            self.preflights.append(exchange)
        else:
            found = self.exchanges.get(event["requestId"])
            if found is None:
                return
            exchange = found
        exchange.status = response["status"]
        exchange.response_headers = _lower(response["headers"])

    def posts(self, origin: str) -> list[Exchange]:
        """Event POSTs to ``origin`` in the order sent (analytics.js telemetry, /v1/m, left out)."""
        return [
            e
            for e in self.exchanges.values()
            if e.method == "POST" and e.url.startswith(origin) and not e.url.endswith("/v1/m")
        ]

    def answered_posts(self, page: Page, origin: str, count: int) -> list[Exchange]:
        """Wait until ``count`` event POSTs have their answers, then return them.

        Playwright hands over CDP events only while it is called, hence the short
        ``wait_for_timeout`` ticks: a poll with a deadline, not a blind sleep.
        """
        deadline = time.monotonic() + 15.0
        while True:
            posts = self.posts(origin)
            if len(posts) >= count and all(p.status is not None for p in posts):
                return posts
            assert time.monotonic() < deadline, f"timed out; network so far: {self.summary()}"
            page.wait_for_timeout(25)

    def summary(self) -> list[tuple[str, str, int | None]]:
        seen = [(e.method, e.url, e.status) for e in self.exchanges.values()]
        return seen + [("preflight", p.url, p.status) for p in self.preflights]


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


@dataclass
class Browser:
    page: Page
    network: Network


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable is not None, (
        "chromium is not on PATH — install Debian's chromium (`make chromium`, used by `make test`)"
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = launched.new_context()
            page = context.new_page()
            page.set_default_timeout(20_000)
            network = Network(context.new_cdp_session(page))
            yield Browser(page, network)
        finally:
            launched.close()


def _run(
    browser: Browser,
    site: str,
    server: ServerProcess,
    calls: list[tuple[str, list[Any]]],
    options: dict[str, Any],
) -> dict[str, Any]:
    browser.page.goto(f"{site}/page.html{QUERY}")
    result: dict[str, Any] = browser.page.evaluate(
        "config => window.runAnalytics(config)",
        {
            "writeKey": WRITE_KEY,
            "cdnURL": server.url,
            "options": options,
            "calls": [{"method": method, "args": args} for method, args in calls],
        },
    )
    assert result["errors"] == [], f"analytics.js reported errors: {result['errors']}"
    # The settings came from Mainstem, which derived the ingest host from the Host header.
    assert result["settings"]["apiKey"] == WRITE_KEY
    assert result["settings"]["apiHost"] == f"127.0.0.1:{server.port}/v1"
    assert result["settings"]["protocol"] == "http"
    return result


def _parse(value: str) -> datetime:
    assert ISO_MS_Z.match(value), f"{value!r} is not ISO-8601 UTC with milliseconds and Z"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _assert_browser_event(
    message: dict[str, Any],
    built: dict[str, Any],
    page_url: str,
    user_agent: str,
    anonymous_id: str,
) -> None:
    """Fields analytics.js adds (reference §5.3) and the server adds for a client path (§2.10)."""
    assert MESSAGE_ID.match(message["messageId"]), message["messageId"]
    assert message["messageId"] == built["messageId"]
    assert message["type"] == built["type"]
    assert message["anonymousId"] == anonymous_id
    context = message["context"]
    assert context["library"] == {"name": "analytics.js", "version": "next-1.84.3"}
    assert context["ip"] == "127.0.0.1"
    assert context["page"]["url"] == page_url
    assert context["page"]["path"] == "/page.html"
    assert context["page"]["title"] == "Mainstem SDK test page"
    assert context["userAgent"] == user_agent
    assert context["campaign"] == {"source": "sdk-test", "name": "mainstem"}
    assert message["channel"] == "browser"
    assert message["version"] == 2
    assert "writeKey" not in message
    assert message["originalTimestamp"] == built["timestamp"]
    sent_at, received_at = _parse(message["sentAt"]), _parse(message["receivedAt"])
    assert sent_at <= received_at < sent_at + timedelta(seconds=10)
    shift = _parse(message["timestamp"]) - _parse(message["originalTimestamp"])
    assert timedelta(0) <= shift < timedelta(seconds=10)


def _assert_preflights(network: Network, site: str, urls: set[str]) -> None:
    """Chromium asked Mainstem before each cross-origin POST, and Mainstem said yes."""
    preflighted = {p.url for p in network.preflights}
    assert urls <= preflighted, f"no preflight seen for {urls - preflighted}"
    for preflight in network.preflights:
        assert 200 <= (preflight.status or 0) < 300, preflight
        allowed = preflight.response_headers
        assert allowed.get("access-control-allow-origin") in (site, "*"), preflight
        assert "POST" in allowed.get("access-control-allow-methods", ""), preflight
        requested = allowed.get("access-control-allow-headers", "").lower()
        assert "authorization" in requested, preflight


def test_analytics_js_standard_delivery(server: ServerProcess, site: str, browser: Browser) -> None:
    calls: list[tuple[str, list[Any]]] = [
        ("page", ["Docs", "Install", {"section": "quickstart"}]),
        # Alias first: analytics.js stamps the current user id over alias's userId once one is
        # known, and fills previousId from it; before identify it takes the anonymousId.
        ("alias", ["user-42"]),
        ("identify", ["user-42", {"email": "ada@example.com", "plan": "pro"}]),
        ("track", ["Signed Up", {"referrer": "newsletter", "seats": 3}]),
        ("screen", ["Onboarding", "Welcome", {"step": 1}]),
        ("group", ["org-7", {"name": "Acme Inc", "employees": 120}]),
    ]
    result = _run(browser, site, server, calls, options={})
    page_url = f"{site}/page.html{QUERY}"
    user_agent: str = browser.page.evaluate("navigator.userAgent")
    network = browser.network

    # One POST per event to /v1/{p,a,i,t,s,g}, text/plain + Basic auth, each answered 200.
    paths = [f"{server.url}/v1/{method[0]}" for method, _ in calls]
    posts = network.answered_posts(browser.page, server.url, len(calls))
    assert [p.url for p in posts] == paths
    for post in posts:
        assert post.status == 200, post
        assert post.headers["authorization"] == BASIC
        assert post.headers["content-type"].startswith("text/plain")
        assert post.response_headers["access-control-allow-origin"] == site
        assert json.loads(post.body or "{}")["writeKey"] == WRITE_KEY
    _assert_preflights(network, site, set(paths))
    settings = [e for e in network.exchanges.values() if "/settings" in e.url]
    assert [(s.method, s.url, s.status) for s in settings] == [
        ("GET", f"{server.url}/v1/projects/{WRITE_KEY}/settings", 200)
    ]

    built = result["events"]
    stored = server.events(expect=len(calls), source="web")
    assert [m["type"] for m in stored] == [method for method, _ in calls]
    by_id = {m["messageId"]: m for m in stored}
    assert set(by_id) == {e["messageId"] for e in built}
    for event in built:
        _assert_browser_event(
            by_id[event["messageId"]], event, page_url, user_agent, result["anonymousId"]
        )

    page, alias, identify, track, screen, group = (by_id[e["messageId"]] for e in built)
    assert (page["category"], page["name"]) == ("Docs", "Install")
    assert page["properties"] == {
        "category": "Docs",
        "name": "Install",
        "section": "quickstart",
        "path": "/page.html",
        "referrer": "",
        "search": QUERY,
        "title": "Mainstem SDK test page",
        "url": page_url,
    }
    assert "userId" not in page
    assert alias["userId"] == "user-42"
    assert alias["previousId"] == result["anonymousId"]
    assert identify["userId"] == "user-42"
    assert identify["traits"] == {"email": "ada@example.com", "plan": "pro"}
    assert track["userId"] == "user-42"
    assert track["event"] == "Signed Up"
    assert track["properties"] == {"referrer": "newsletter", "seats": 3}
    assert "traits" not in track
    assert (screen["category"], screen["name"]) == ("Onboarding", "Welcome")
    assert screen["properties"]["step"] == 1
    assert group["userId"] == "user-42"
    assert group["groupId"] == "org-7"
    assert group["traits"] == {"name": "Acme Inc", "employees": 120}


def test_analytics_js_batching_delivery(server: ServerProcess, site: str, browser: Browser) -> None:
    # Batching mode (reference §5.3): events go in {"batch": [...], "sentAt", "writeKey"} to
    # POST /v1/b. Three events per batch and a long timeout, so the two batches are cut by size.
    options = {
        "integrations": {
            "Segment.io": {
                "deliveryStrategy": {
                    "strategy": "batching",
                    "config": {"size": 3, "timeout": 60_000},
                }
            }
        }
    }
    calls: list[tuple[str, list[Any]]] = [
        ("alias", ["user-77"]),
        ("page", ["Pricing", {"plan": "team"}]),
        ("identify", ["user-77", {"company": {"name": "Initech"}}]),
        ("track", ["Plan Selected", {"plan": "team", "price": 49.0}]),
        ("screen", ["Checkout", {"step": 2}]),
        ("group", ["org-77", {"name": "Initech"}]),
    ]
    result = _run(browser, site, server, calls, options=options)
    page_url = f"{site}/page.html{QUERY}"
    user_agent: str = browser.page.evaluate("navigator.userAgent")
    network = browser.network

    batch_url = f"{server.url}/v1/b"
    posts = network.answered_posts(browser.page, server.url, 2)
    assert [p.url for p in posts] == [batch_url, batch_url]
    envelopes = [json.loads(p.body or "{}") for p in posts]
    for post, envelope in zip(posts, envelopes, strict=True):
        assert post.status == 200, post
        assert post.headers["authorization"] == BASIC
        assert envelope["writeKey"] == WRITE_KEY
        assert len(envelope["batch"]) == 3
        assert all("sentAt" not in event for event in envelope["batch"])
    _assert_preflights(network, site, {batch_url})

    built = result["events"]
    stored = server.events(expect=len(calls), source="web")
    assert [m["type"] for m in stored] == [method for method, _ in calls]
    by_id = {m["messageId"]: m for m in stored}
    assert set(by_id) == {e["messageId"] for e in built}
    for event in built:
        _assert_browser_event(
            by_id[event["messageId"]], event, page_url, user_agent, result["anonymousId"]
        )
    # The envelope's sentAt applies to every element; one receivedAt per request (§1.5).
    for envelope in envelopes:
        messages = [by_id[e["messageId"]] for e in envelope["batch"]]
        assert {m["sentAt"] for m in messages} == {envelope["sentAt"]}
        assert len({m["receivedAt"] for m in messages}) == 1

    alias, page, identify, track, screen, group = (by_id[e["messageId"]] for e in built)
    assert (alias["userId"], alias["previousId"]) == ("user-77", result["anonymousId"])
    assert page["name"] == "Pricing"
    assert "category" not in page
    assert page["properties"]["plan"] == "team"
    assert page["properties"]["url"] == page_url
    assert identify["traits"] == {"company": {"name": "Initech"}}
    assert (track["event"], track["properties"]) == ("Plan Selected", {"plan": "team", "price": 49})
    assert screen["name"] == "Checkout"
    assert screen["properties"]["step"] == 2
    assert (group["groupId"], group["traits"]) == ("org-77", {"name": "Initech"})
    for message in (identify, track, screen, group):
        assert message["userId"] == "user-77"
