"""A source function for Stripe webhooks (docs/functions.md).

mainstem.yaml::

    sources:
      - id: stripe
        write_key: ${STRIPE_SOURCE_KEY}
        function:
          file: functions/stripe.py
          settings: {secret: "${STRIPE_WEBHOOK_SECRET}"}

Stripe's own signature scheme (``t=...,v1=...`` over ``"{t}.{body}"``) is checked here.
"""

import hashlib
import hmac

from mainstem.functions import Segment, ValidationError


def _verify(request, secret):
    parts = dict(
        item.split("=", 1)
        for item in request.headers.get("Stripe-Signature", "").split(",")
        if "=" in item
    )
    signed = parts.get("t", "").encode() + b"." + request.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(parts.get("v1", ""), expected):
        raise ValidationError("the Stripe-Signature header does not match the body")


def on_request(request, settings):
    _verify(request, settings["secret"])
    event = request.json()
    thing = event["data"]["object"]
    if event["type"] == "customer.created":
        Segment.identify(
            {
                "userId": thing["id"],
                "messageId": event["id"],
                "traits": {"email": thing.get("email"), "name": thing.get("name")},
            }
        )
    elif event["type"] == "charge.succeeded":
        Segment.track(
            {
                "userId": thing["customer"],
                "event": "Charge Succeeded",
                "messageId": event["id"],
                "properties": {
                    "revenue": thing["amount"] / 100,
                    "currency": thing["currency"],
                },
            }
        )
    # other event types are acknowledged and ignored
