"""Finding the write key in a request (reference §1.3): pure.

Resolution order: HTTP Basic username → the envelope's ``writeKey`` → the first message's
``writeKey`` (→ for the pixel, ``writeKey`` in ``data`` or the query string). ``Bearer`` tokens
(Segment's OAuth) are accepted but carry no write key, so the body must.
"""

from __future__ import annotations

import base64
import binascii


def basic_username(authorization: str | None) -> str | None:
    """The username of a Basic header; Segment accepts it with or without the trailing colon."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username = decoded.partition(":")[0]
    return username or None


def first_key(*candidates: object) -> str | None:
    """The first candidate that is a non-empty string."""
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            return candidate
    return None
