"""The example functions in examples/functions/ load and do what docs/functions.md says."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from mainstem import config
from mainstem.functions.runner import Pool
from tests.destinations.conftest import Receiver, Serve

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "functions"


def test_the_examples_are_valid_functions() -> None:
    text = (
        "admin_token: long-enough\n"
        "sources:\n"
        "  - id: stripe\n"
        "    write_key: stripe-key-1\n"
        "    function: {file: stripe.py, settings: {secret: s}}\n"
        "destinations:\n"
        "  - id: crm\n"
        "    type: function\n"
        "    function: {file: crm.py, settings: {url: 'http://x', api_key: k}}\n"
    )
    workspace = config.parse(text, file=str(EXAMPLES / "mainstem.yaml"), env={})
    assert workspace.sources[0].function is not None
    function = workspace.destinations[0].function
    assert function is not None
    assert function.handlers == ("on_track", "on_identify")


def test_the_stripe_example_checks_the_signature_and_emits_a_track() -> None:
    body = json.dumps(
        {
            "id": "evt_1",
            "type": "charge.succeeded",
            "data": {"object": {"customer": "cus_1", "amount": 1250, "currency": "eur"}},
        }
    ).encode()
    digest = hmac.new(b"whsec", b"1700000000." + body, hashlib.sha256).hexdigest()
    request = {
        "method": "POST",
        "url": "http://localhost/functions/stripe",
        "headers": {"stripe-signature": f"t=1700000000,v1={digest}"},
        "body": body.decode("latin-1"),
    }
    pool = Pool(EXAMPLES / "stripe.py")
    try:
        result = pool.call("on_request", request, {"secret": "whsec"})
        assert result.ok, result
        assert result.emitted == (
            {
                "userId": "cus_1",
                "event": "Charge Succeeded",
                "messageId": "evt_1",
                "properties": {"revenue": 12.5, "currency": "eur"},
                "type": "track",
            },
        )
        forged = pool.call("on_request", request, {"secret": "other"})
        assert forged.describe() == (
            "ValidationError: the Stripe-Signature header does not match the body"
        )
    finally:
        pool.close()


def test_the_crm_example_posts_and_classifies_answers(serve: Serve) -> None:
    crm = serve(Receiver("webhook", behaviour=lambda n: [(200, {}), (503, {}), (404, {})][n]))
    settings = {"url": crm.url, "api_key": "k"}
    event = {"type": "track", "userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}}
    pool = Pool(EXAMPLES / "crm.py")
    try:
        assert pool.call("on_track", event, settings).ok
        assert pool.call("on_track", event, settings).describe() == (
            "RetryError: the CRM answered 503"
        )
        assert pool.call("on_track", event, settings).kind == "reject"
    finally:
        pool.close()
    assert crm.requests[0].path == "/events"
    assert crm.requests[0].headers["authorization"] == "Bearer k"
    assert crm.requests[0].body == {
        "user": "u1",
        "name": "Signed Up",
        "properties": {"plan": "pro"},
    }
