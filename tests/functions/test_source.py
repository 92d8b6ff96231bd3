"""Source functions over HTTP (the app in-process; the functions in real worker processes):
webhooks become track and identify calls stored exactly like tracking API events."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import WORKSPACE, InProcess
from tests.functions.conftest import write

STRIPE = """\
import hashlib
import hmac
import os
import time

from mainstem.functions import RetryError, Segment, ValidationError


def on_request(request, settings):
    signature = request.headers.get("Stripe-Signature", "")
    expected = hmac.new(settings["secret"].encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        raise ValidationError("bad Stripe-Signature")
    event = request.json()
    kind = event["type"]
    if kind == "api.down":
        raise RetryError("Stripe's API is down")
    if kind == "slow":
        time.sleep(3600)
    if kind == "crash":
        os._exit(1)
    if kind == "bug":
        return event["missing"]
    charge = event["data"]["object"]
    if kind == "anonymous.charge":
        Segment.track({"event": "Charge Succeeded"})  # no userId: rejected like the API would
        return
    Segment.identify({"userId": charge["customer"], "traits": {"email": charge["email"]}})
    Segment.track(
        {
            "userId": charge["customer"],
            "event": "Charge Succeeded",
            "messageId": event["id"],
            "properties": {"amount": charge["amount"] / 100, "currency": charge["currency"]},
        }
    )
"""

GITHUB = """\
import json

from mainstem.functions import Segment


def on_request(request, settings):
    form = request.form()
    payload = json.loads(form["payload"])
    kind = request.headers.get("X-GitHub-Event")
    Segment.track(
        {
            "userId": payload["sender"]["login"],
            "event": "Code Pushed" if kind == "push" else f"GitHub {kind}",
            "properties": {
                "repository": payload["repository"]["full_name"],
                "commits": len(payload["commits"]),
                "query": request.query.get("team", [""])[0],
            },
        }
    )
"""

STRIPE_KEY = "stripe-write-key"
GITHUB_KEY = "github-write-key"
SECRET = "whsec_test"


@pytest.fixture
def workspace_file(tmp_path: Path) -> Path:
    write(tmp_path, "stripe.py", STRIPE)
    write(tmp_path, "github.py", GITHUB)
    sources = (
        "sources:\n"
        "  - id: stripe\n"
        "    name: Stripe\n"
        f"    write_key: {STRIPE_KEY}\n"
        f"    function: {{file: stripe.py, timeout: 2s, settings: {{secret: {SECRET}}}}}\n"
        "  - id: github\n"
        f"    write_key: {GITHUB_KEY}\n"
        "    function: {file: github.py}\n"
    )
    path = tmp_path / "mainstem.yaml"
    path.write_text(
        WORKSPACE.format(data_dir=tmp_path / "data").replace("sources:\n", sources),
        encoding="utf-8",
    )
    return path


def stripe_event(kind: str, **charge: Any) -> dict[str, Any]:
    obj = {"customer": "cus_1", "email": "ada@example.com", "amount": 2000, "currency": "usd"}
    return {"id": f"evt_{kind}", "type": kind, "data": {"object": obj | charge}}


def post_stripe(inproc: InProcess, event: dict[str, Any], *, secret: str = SECRET) -> Any:
    body = json.dumps(event).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return inproc.client.post(
        f"/functions/stripe?key={STRIPE_KEY}",
        content=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )


def test_a_stripe_webhook_becomes_identify_and_track(inproc: InProcess) -> None:
    reply = post_stripe(inproc, stripe_event("charge.succeeded"))
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"success": True, "events": 2}
    stored = inproc.events(source_id="stripe")
    by_type = {message["type"]: message for message in stored}
    assert set(by_type) == {"identify", "track"}
    assert by_type["identify"]["userId"] == "cus_1"
    assert by_type["identify"]["traits"] == {"email": "ada@example.com"}
    track = by_type["track"]
    assert track["event"] == "Charge Succeeded"
    assert track["messageId"] == "evt_charge.succeeded"
    assert track["properties"] == {"amount": 20.0, "currency": "usd"}
    # normalized like any tracking API event
    assert track["context"]["library"] == {"name": "mainstem-functions", "version": "0.1.0"}
    assert {"receivedAt", "timestamp", "channel"} <= set(track)


def test_a_redelivered_webhook_is_deduplicated_by_its_message_id(inproc: InProcess) -> None:
    for _ in range(2):
        assert post_stripe(inproc, stripe_event("charge.succeeded")).status_code == 200
    tracks = [m for m in inproc.events(source_id="stripe") if m["type"] == "track"]
    assert len(tracks) == 1


def test_a_github_form_webhook_becomes_a_track_with_basic_auth(inproc: InProcess) -> None:
    payload = {
        "sender": {"login": "octocat"},
        "repository": {"full_name": "acme/shop"},
        "commits": [{"id": "a"}, {"id": "b"}],
    }
    reply = inproc.client.post(
        "/functions/github?team=web",
        content=urlencode({"payload": json.dumps(payload)}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-GitHub-Event": "push",
        },
        auth=(GITHUB_KEY, ""),
    )
    assert reply.status_code == 200, reply.text
    (stored,) = inproc.events(source_id="github")
    assert stored["type"] == "track"
    assert stored["userId"] == "octocat"
    assert stored["event"] == "Code Pushed"
    assert stored["properties"] == {"repository": "acme/shop", "commits": 2, "query": "web"}


@pytest.mark.parametrize(
    ("event", "status", "code", "message"),
    [
        (
            stripe_event("api.down"),
            503,
            "function_retry",
            "the source function failed: RetryError: Stripe's API is down",
        ),
        (
            stripe_event("slow"),
            503,
            "function_timeout",
            "the source function failed: Timeout: no answer within 2s (killed)",
        ),
        (
            stripe_event("crash"),
            500,
            "function_failed",
            "the source function failed: Crash: the function's worker process died (exit code 1)",
        ),
        (
            stripe_event("bug"),
            500,
            "function_failed",
            "the source function failed: KeyError: 'missing'",
        ),
        (
            stripe_event("anonymous.charge"),
            400,
            "no_user_anon_id",
            "Segment.track() call 1 of 1: track needs userId or anonymousId",
        ),
    ],
)
def test_function_failures_answer_with_the_functions_message_and_store_nothing(
    inproc: InProcess, event: dict[str, Any], status: int, code: str, message: str
) -> None:
    reply = post_stripe(inproc, event)
    assert reply.status_code == status, reply.text
    assert reply.json()["code"] == code
    assert reply.json()["message"] == message
    assert inproc.events(source_id="stripe") == []
    # the server and the function are still there for the next webhook
    assert post_stripe(inproc, stripe_event("charge.succeeded")).status_code == 200


def test_a_rejected_signature_is_a_400_with_the_reason(inproc: InProcess) -> None:
    reply = post_stripe(inproc, stripe_event("charge.succeeded"), secret="forged")
    assert reply.status_code == 400
    assert reply.json() == {
        "success": False,
        "code": "function_rejected",
        "message": "the source function failed: ValidationError: bad Stripe-Signature",
        "error": "the source function failed: ValidationError: bad Stripe-Signature",
    }


def test_the_write_key_is_required(inproc: InProcess) -> None:
    for url, auth in [("/functions/stripe", None), ("/functions/stripe?key=wrong", None)]:
        reply = inproc.client.post(url, json={}, auth=auth)
        assert reply.status_code == 401
        assert reply.json()["code"] == "project_not_found"
    reply = inproc.client.post("/functions/github", json={}, auth=(STRIPE_KEY, ""))
    assert reply.status_code == 401


def test_unknown_functions_and_methods(inproc: InProcess) -> None:
    reply = inproc.client.post("/functions/web", json={}, auth=("test-write-key-web", ""))
    assert reply.status_code == 404
    assert reply.json()["code"] == "unknown_function"
    reply = inproc.client.get(f"/functions/stripe?key={STRIPE_KEY}")
    assert reply.status_code == 400
    assert reply.json()["code"] == "method_not_allowed"
