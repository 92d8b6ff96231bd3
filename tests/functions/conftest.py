"""Function files used across the function tests, and the delivery fixtures (real event log,
processor and loopback receivers) re-exported from ``tests/destinations``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mainstem import config
from mainstem.destinations.spec import Destination
from tests.destinations.conftest import pipeline, serve

__all__ = ["pipeline", "serve"]

MISBEHAVING = """\
import ctypes
import os
import time

from mainstem.functions import EventNotSupported, RetryError, ValidationError


def on_track(event, settings):
    print("user output goes to stderr, not into the protocol")
    what = event["event"]
    if what == "Retry":
        raise RetryError("the CRM answered 503")
    if what == "Invalid":
        raise ValidationError("email is missing")
    if what == "Unsupported":
        raise EventNotSupported("this CRM takes no such event")
    if what == "Bug":
        return {}["missing"]
    if what == "Sleep":
        time.sleep(3600)
    if what == "Exit":
        os._exit(3)
    if what == "Abort":
        os.abort()
    if what == "Segfault":
        ctypes.string_at(0)
    if what == "Allocate":
        hoard = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))


def on_identify(event, settings):
    if settings.get("reject_identify"):
        raise ValidationError(f"identify is off for {event['userId']}")


def on_page(event, settings):
    raise ValidationError(f"pid {os.getpid()}")
"""

DELIVERING = """\
from mainstem.functions import RetryError, fetch


def on_track(event, settings):
    reply = fetch(
        settings["url"] + "/crm",
        method="POST",
        json_body={"name": event["event"], "user": event["userId"], "from": "function"},
    )
    if reply.status >= 500 or reply.status == 429:
        raise RetryError(f"the CRM answered {reply.status}")
    if not reply.ok:
        raise ValueError(f"the CRM answered {reply.status}: {reply.text()}")


def on_identify(event, settings):
    fetch(settings["url"] + "/crm", method="POST", json_body={"user": event["userId"]})


def on_batch(events, settings):
    fetch(settings["url"] + "/crm", method="POST", json_body=[e["messageId"] for e in events])
"""

HEAD = """\
admin_token: test-admin-token
sources:
  - id: web
    write_key: test-write-key-web
"""


def write(directory: Path, name: str, code: str) -> Path:
    path = directory / name
    path.write_text(code, encoding="utf-8")
    return path


def function_destination(
    directory: Path, code: str, *, block: str = "", **changes: Any
) -> Destination:
    """A ``type: function`` destination parsed from YAML, with ``changes`` applied after."""
    write(directory, "fn.py", code)
    text = HEAD + (
        f"destinations:\n  - id: fn\n    type: function\n    function: {{file: fn.py{block}}}\n"
    )
    workspace = config.parse(text, file=str(directory / "mainstem.yaml"), env={})
    (destination,) = workspace.destinations
    return dataclasses.replace(destination, **({"batch_interval": 0.0} | changes))
