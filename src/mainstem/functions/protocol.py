"""Frames between the server and a worker process: a 4-byte big-endian length, then that many
bytes of UTF-8 JSON. Bodies of webhooks travel as latin-1 text, which maps bytes 1:1.

Requests (server → worker)::

    {"entry": "on_track" | "on_batch" | "on_request" | "events", "payload": ..., "settings": {...}}

``entry: "events"`` sends a list of events to their per-type handlers one by one (a batch for a
function without ``on_batch``). Replies (worker → server)::

    {"ok": true, "emitted": [...]}                                   # success
    {"ok": false, "error": "RetryError", "kind": "retry", "message": "..."}
    {"ok": true, "results": [<one reply per event>]}                   # for entry "events"

The worker's first frame says it is ready: ``{"ready": true, "handlers": [...]}`` or
``{"ready": false, "message": "<why the file could not be loaded>"}``.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

MAX_FRAME = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")


class Closed(Exception):
    """The other side closed the pipe (the worker died, or the server went away)."""


class TimedOut(Exception):
    pass


class TooLarge(Exception):
    pass


def encode(value: Any) -> bytes:
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    if len(body) > MAX_FRAME:
        raise TooLarge(f"a frame of {len(body)} bytes is over the limit of {MAX_FRAME}")
    return _HEADER.pack(len(body)) + body


def write(fd: int, value: Any) -> None:
    """Raises:
    Closed: the reader is gone."""
    data = memoryview(encode(value))
    try:
        while data:
            written = os.write(fd, data)
            data = data[written:]
    except (BrokenPipeError, OSError) as exc:
        raise Closed(str(exc)) from exc


def read(fd: int, deadline: float | None = None) -> Any:
    """The next frame from ``fd``; ``deadline`` is a ``time.monotonic()`` value or ``None``.

    Raises:
        Closed: end of file before a whole frame.
        TimedOut: the deadline passed first.
        TooLarge: the frame is over :data:`MAX_FRAME`.
    """
    (length,) = _HEADER.unpack(_exactly(fd, _HEADER.size, deadline))
    if length > MAX_FRAME:
        raise TooLarge(f"a frame of {length} bytes is over the limit of {MAX_FRAME}")
    return json.loads(_exactly(fd, length, deadline))


def _exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimedOut()
            readable, _, _ = select.select([fd], [], [], wait)
            if not readable:
                raise TimedOut()
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise Closed("end of file")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
