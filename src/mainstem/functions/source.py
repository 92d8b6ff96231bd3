"""``POST /functions/{source_id}``: a webhook runs the source's function, and the Segment calls
it emits are committed to the event log before the answer.

The emitted calls take the tracking API's path: each is checked by the same
:func:`mainstem.message.validate` the gateway runs on single events, then all of them are
committed as one batch record of that source (group commit, backpressure and all), and the
processor normalizes them like any batch. Either every call of a request is stored or none is.

Authentication: the source's write key as the HTTP Basic username, or as ``?key=`` in the URL
(webhook senders such as Stripe and GitHub can only be given a URL).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import msgspec

from mainstem import __version__, message
from mainstem.config import Source, Workspace
from mainstem.credentials import basic_username
from mainstem.errors import (
    InvalidMessage,
    MainstemError,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    RetryLater,
    Unauthorized,
)
from mainstem.functions import outcome
from mainstem.functions.runner import Pool
from mainstem.functions.spec import FunctionSpec
from mainstem.gateway import Gateway, Receive, Scope, Send
from mainstem.logrecord import LogRecord
from mainstem.timestamps import now_us

log = logging.getLogger(__name__)

PREFIX = "/functions/"
LIBRARY = {"name": "mainstem-functions", "version": __version__}
_encode = msgspec.json.Encoder().encode
_THREADS = 32
"""Calls waiting at once across all source functions; each function's own ``concurrency``
bounds its worker processes."""


class SourceFunctions:
    """ASGI app for ``/functions/...``. Reads the workspace on every request (reloads apply);
    keeps one worker pool per source function, replaced when its ``function:`` block changes."""

    def __init__(
        self, workspace: Callable[[], Workspace], gateway: Callable[[], Gateway | None]
    ) -> None:
        self._workspace = workspace
        self._gateway = gateway
        self._pools: dict[str, tuple[FunctionSpec, Pool]] = {}
        self._lock = threading.Lock()
        # its own threads, so webhooks waiting for slow functions never starve the event loop's
        # default executor, which storage and shutdown use
        self._threads = ThreadPoolExecutor(_THREADS, thread_name_prefix="source-function")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._handle(scope, receive)
            await _respond(send, 200, answer)
        except MainstemError as exc:
            body = {
                "success": False,
                "code": exc.code,
                "message": exc.message,
                "error": exc.message,
            }
            extra = []
            if exc.status in (429, 503):
                extra = [(b"retry-after", b"1")]
            await _respond(send, exc.status, body, extra)

    async def _handle(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        source_id = scope["path"][len(PREFIX) :].rstrip("/")
        workspace = self._workspace()
        source = next((s for s in workspace.sources if s.id == source_id), None)
        if source is None or source.function is None:
            raise NotFound(
                f"no source function {source_id!r} — add `function: {{file: ...}}` to a source in "
                "mainstem.yaml (docs/functions.md)",
                code="unknown_function",
            )
        if scope["method"] != "POST":
            raise MalformedBody(
                f"{scope['method']} is not allowed on {scope['path']} — send POST",
                code="method_not_allowed",
            )
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        _authenticate(source, headers, query)
        gateway = self._gateway()
        if gateway is None:
            raise RetryLater("the event log is not open yet — retry shortly")
        settings = workspace.settings
        body = await _read_body(receive, headers, settings.max_request_bytes)
        url = f"{scope.get('scheme', 'http')}://{headers.get('host', 'localhost')}{scope['path']}"
        request = {
            "method": "POST",
            "url": f"{url}?{query}" if query else url,
            "headers": headers,
            "body": body.decode("latin-1"),
        }
        received_at = now_us()
        pool = self._pool(source.id, source.function)
        run = functools.partial(pool.call, "on_request", request, dict(source.function.settings))
        result = await asyncio.get_running_loop().run_in_executor(self._threads, run)
        if not result.ok:
            failure = outcome.http_error(result)
            raise _FunctionFailed(failure.status, failure.code, result.describe())
        emitted = [_with_library(call) for call in result.emitted]
        _validate(emitted, settings.max_event_bytes, settings.max_batch_events)
        if emitted:
            client = scope.get("client")
            record = LogRecord(
                source_id=source.id,
                received_at=received_at,
                body=_encode({"batch": emitted}),
                ip=client[0] if client else None,
            )
            await gateway.commit(record)
            gateway.metrics.events_accepted.add((source.id,), len(emitted))
        return {"success": True, "events": len(emitted)}

    def _pool(self, source_id: str, spec: FunctionSpec) -> Pool:
        with self._lock:
            current = self._pools.get(source_id)
            if current is not None and current[0] == spec:
                return current[1]
            pool = Pool(spec.file, spec.limits, name=f"{spec.file.name} (source {source_id})")
            self._pools[source_id] = (spec, pool)
        if current is not None:
            current[1].close()
        return pool

    def close(self) -> None:
        """Stop every worker process. Idempotent."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for _, pool in pools:
            pool.close()
        self._threads.shutdown(wait=False, cancel_futures=True)


class _FunctionFailed(MainstemError):
    def __init__(self, status: int, code: str, text: str) -> None:
        super().__init__(f"the source function failed: {text}", code=code)
        self.status = status


def _authenticate(source: Source, headers: dict[str, str], query: str) -> None:
    key = basic_username(headers.get("authorization"))
    if key is None:
        keys = parse_qs(query).get("key")
        key = keys[-1] if keys else None
    if key is None or not hmac.compare_digest(key.encode(), source.write_key.reveal().encode()):
        raise Unauthorized(
            f"source {source.id!r} needs its write key — as the Basic auth username or as "
            "?key=<write key> in the URL",
            code="project_not_found",
        )
    if not source.enabled:
        raise Unauthorized(
            f"source {source.id!r} is disabled — set `enabled: true` in mainstem.yaml",
            code="source_disabled",
        )


def _with_library(call: dict[str, Any]) -> dict[str, Any]:
    context = call.get("context")
    if not isinstance(context, dict):
        context = {}
    if "library" not in context:
        context = {**context, "library": LIBRARY}
    return {**call, "context": context}


def _validate(emitted: list[dict[str, Any]], max_event: int, max_batch: int) -> None:
    """The gateway's single-event checks, for each emitted call (the first problem wins)."""
    if len(emitted) > max_batch:
        raise PayloadTooLarge(
            f"the source function emitted {len(emitted)} calls; the limit is {max_batch}",
            code="batch_too_large",
        )
    for number, call in enumerate(emitted, start=1):
        where = f"Segment.{call.get('type')}() call {number} of {len(emitted)}"
        size = len(_encode(call))
        if size > max_event:
            raise PayloadTooLarge(
                f"{where} is {size} bytes; the limit for one event is {max_event} bytes",
                code="message_too_large",
            )
        problem = message.validate(call, str(call.get("type")))
        if problem is not None:
            raise InvalidMessage(f"{where}: {problem.reason}", code=problem.code)


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            raise MalformedBody("the client went away before sending the whole body")
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not event.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": _encode(body)})
