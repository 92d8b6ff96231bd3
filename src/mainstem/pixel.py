"""The pixel API (reference §1.2): ``GET /v1/pixel/<type>?data=<base64 JSON>`` or dotted query
parameters such as ``properties.subject=Welcome``. Pure."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl

import msgspec

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
TYPES = ("identify", "group", "alias", "page", "screen", "track")


def message_from_query(query_string: str) -> dict[str, Any] | None:
    """The message a pixel request carries, or ``None`` when it carries nothing usable."""
    params = parse_qsl(query_string, keep_blank_values=True)
    message: dict[str, Any] = {}
    for key, value in params:
        if key == "data":
            decoded = _decode_data(value)
            if decoded is None:
                return None
            message.update(decoded)
            continue
        into = message
        parts = key.split(".")
        for part in parts[:-1]:
            child = into.get(part)
            if not isinstance(child, dict):
                child = into[part] = {}
            into = child
        into[parts[-1]] = value
    return message or None


def _decode_data(value: str) -> dict[str, Any] | None:
    value = value.replace(" ", "+")  # a "+" of standard base64 arrives as a space
    padded = value + "=" * (-len(value) % 4)
    for candidate in (padded, value):
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            try:
                decoded = msgspec.json.decode(decode(candidate))
            except (binascii.Error, ValueError, msgspec.DecodeError):
                continue
            return decoded if isinstance(decoded, dict) else None
    try:  # "base64 optional": plain JSON in data
        decoded = msgspec.json.decode(value.encode())
    except msgspec.DecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None
