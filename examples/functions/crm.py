"""A destination function that sends tracks and identifies to a CRM's HTTP API
(docs/functions.md).

mainstem.yaml::

    destinations:
      - id: crm
        type: function
        types: [track, identify]
        function:
          file: functions/crm.py
          settings: {url: "https://crm.example.com", api_key: "${CRM_API_KEY}"}
"""

from mainstem.functions import RetryError, ValidationError, fetch


def _post(settings, path, body):
    reply = fetch(
        settings["url"].rstrip("/") + path,
        method="POST",
        headers={"Authorization": f"Bearer {settings['api_key']}"},
        json_body=body,
    )
    if reply.status == 429 or reply.status >= 500:
        raise RetryError(f"the CRM answered {reply.status}")
    if not reply.ok:
        raise ValidationError(f"the CRM refused it: {reply.status} {reply.text()[:200]}")


def on_track(event, settings):
    user = event.get("userId") or event.get("anonymousId")
    _post(
        settings,
        "/events",
        {"user": user, "name": event["event"], "properties": event.get("properties", {})},
    )


def on_identify(event, settings):
    if not event.get("userId"):
        raise ValidationError("the CRM needs a userId")
    _post(settings, "/contacts", {"id": event["userId"], "traits": event.get("traits", {})})
