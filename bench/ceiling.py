"""Ceiling servers for ``bench/ingest.py``: the gateway's HTTP stack, doing less than the gateway.

    .venv/bin/python bench/ceiling.py --mode bare --port 8099

Both run uvicorn exactly as ``mainstem serve`` does (``loop="uvloop"``, ``http="httptools"``,
one worker, no access log, no ``server`` header) around a raw ASGI callable, and answer any path:

``bare``
    reads the whole request body and answers ``200 {"success":true}``: the HTTP ceiling.
``decode``
    also decodes the body with msgspec into Python objects, the way the processor sees messages
    (``dict``s, not a typed struct): a batch body ``{"batch": [...]}`` in one
    ``msgspec.json.decode`` call (every message becomes a ``dict``; the cheapest way to look at
    every event), then checks that each element is an object; a single-event body into one
    ``dict``. A body that is not a JSON object gets a ``400``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_OK = b'{"success":true}'
_BAD = b'{"success":false}'
_HEADERS = [(b"content-type", b"application/json")]
_decode = msgspec.json.Decoder().decode


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": body})


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await _read_body(receive)
    await _answer(send, 200, _OK)


def count_messages(body: bytes) -> int:
    """Decode ``body`` fully; how many messages it holds (``-1``: not a JSON object)."""
    try:
        value = _decode(body)
    except msgspec.DecodeError:
        return -1
    if not isinstance(value, dict):
        return -1
    batch = value.get("batch")
    if batch is None:
        return 1
    if not isinstance(batch, list):
        return -1
    return sum(1 for item in batch if isinstance(item, dict))


async def decode(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    if scope["method"] == "POST" and count_messages(body) < 0:
        await _answer(send, 400, _BAD)
        return
    await _answer(send, 200, _OK)


APPS: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
    "bare": bare,
    "decode": decode,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=sorted(APPS), required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        APPS[args.mode],
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
