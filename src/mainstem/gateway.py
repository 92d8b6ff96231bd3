"""The ingest gateway: Segment's HTTP Tracking API (reference §1) as a raw ASGI app.

The gateway authenticates, bounds sizes, checks that the body is JSON of the right shape, and
commits the request to the event log (group commit) before it answers ``200 {"success": true}``.
Per-message rules run in the processor (:mod:`mainstem.intake`), except for single-event paths,
whose one message is validated here so a bad request gets its ``400`` (Segment answers 200 and
drops it later, reference §1.7; we tell the sender, as its SDK logs a 400 and gives up).

It is a plain ASGI callable rather than a framework route because it is the hot path: every
microsecond per request is a fraction of the single-event ceiling (DESIGN §8).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import msgspec

from mainstem import message, pixel
from mainstem.config import Source, Workspace
from mainstem.credentials import basic_username, first_key
from mainstem.errors import (
    InvalidMessage,
    MainstemError,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    RetryLater,
    TooManyRequests,
    Unauthorized,
)
from mainstem.forwarding import TrustedProxies
from mainstem.intake import JsonError, compact_size, loads
from mainstem.logrecord import LogRecord
from mainstem.metrics import Metrics
from mainstem.storage.groupcommit import GroupCommitter
from mainstem.timestamps import now_us

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger(__name__)

_SINGLE = {
    "identify": "identify",
    "track": "track",
    "page": "page",
    "screen": "screen",
    "group": "group",
    "alias": "alias",
}
_LETTER = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias"}


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    kind: str  # "batch" | "single" | "metrics"
    path_type: str | None = None
    client: bool = False


ROUTES: dict[str, Route] = {
    "/v1/batch": Route("batch", "batch"),
    "/v1/import": Route("import", "batch"),
    "/v1/b": Route("b", "batch", client=True),
    "/v1/m": Route("m", "metrics", client=True),
    **{f"/v1/{name}": Route(name, "single", kind_) for name, kind_ in _SINGLE.items()},
    **{
        f"/v1/{letter}": Route(letter, "single", kind_, client=True)
        for letter, kind_ in _LETTER.items()
    },
}

_OK = b'{"success":true}'
_JSON = (b"content-type", b"application/json")
_CORS_HEADERS = b"Content-Type, Authorization, X-Retry-Count"


class _Envelope(msgspec.Struct):
    batch: list[msgspec.Raw] | None = None
    writeKey: Any = None


class _KeyOnly(msgspec.Struct):
    writeKey: Any = None


_envelope = msgspec.json.Decoder(_Envelope)
_key_only = msgspec.json.Decoder(_KeyOnly)
_encode = msgspec.json.Encoder().encode


class Gateway:
    """ASGI app for ``/v1/...``. ``workspace`` is read on every request, so swapping it reloads
    sources and keys without a restart."""

    def __init__(self, workspace: Workspace, committer: GroupCommitter, metrics: Metrics) -> None:
        self.workspace = workspace
        self.committer = committer
        self.metrics = metrics
        settings = workspace.settings
        self._proxies = TrustedProxies(settings.trusted_proxies)
        self._max_request = settings.max_request_bytes
        self._max_event = settings.max_event_bytes
        self._max_batch = settings.max_batch_events
        self._max_pending = settings.max_pending_bytes
        self._accepted = metrics.events_accepted.add
        self._rejected = metrics.requests_rejected.add
        self._requests = metrics.requests.add
        self._latency = metrics.latency.observe
        self._bytes = metrics.bytes.add

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path = scope["path"].rstrip("/") or "/"
        method = scope["method"]
        headers = _headers(scope)
        origin = headers.get("origin")
        route = ROUTES.get(path)
        name = route.name if route is not None else "other"
        try:
            if method == "OPTIONS":
                await _preflight(send, origin, headers)
                status = 204
            elif route is not None and method == "POST":
                status = await self._ingest(route, scope, receive, send, headers, origin)
            elif path.startswith("/v1/pixel/") and method in ("GET", "HEAD"):
                name = "pixel"
                status = await self._pixel(path, scope, headers, send)
            elif path.startswith("/v1/projects/") and path.endswith("/settings"):
                name = "settings"
                status = await self._settings(path, scope, headers, send, origin)
            elif route is not None:
                raise MalformedBody(
                    f"{method} is not allowed on {path} — send POST with a JSON body",
                    code="method_not_allowed",
                )
            else:
                raise NotFound(f"no ingest endpoint at {path} — see docs/http-api.md")
        except MainstemError as exc:
            status = exc.status
            if name != "other":
                self._rejected((exc.code,))
            await _error(send, exc, origin)
        self._requests((name, str(status)))
        if route is not None:
            self._latency(time.perf_counter() - started)

    async def _ingest(
        self,
        route: Route,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        origin: str | None,
    ) -> int:
        body = await _read_body(receive, headers, self._max_request)
        self._bytes((), len(body))
        if route.kind == "metrics":  # analytics.js telemetry: accepted and discarded
            await _ok(send, origin)
            return 200
        received_at = now_us()
        basic = basic_username(headers.get("authorization"))
        if route.kind == "batch":
            envelope = _decode_envelope(body)
            key = basic or first_key(envelope.writeKey)
            if key is None and envelope.batch:
                key = first_key(_first_write_key(envelope.batch[0]))
            source = self._source(key)
            count = len(envelope.batch or ())
            path_type = None
        else:
            single = _decode_single(body)
            if len(body) > self._max_event and compact_size(single) > self._max_event:
                raise PayloadTooLarge(
                    f"the event is {compact_size(single)} bytes; the limit for one event is "
                    f"{self._max_event} bytes",
                    code="message_too_large",
                )
            source = self._source(basic or first_key(single.get("writeKey")))
            path_type = route.path_type
            problem = message.validate(single, path_type)
            if problem is not None:
                raise InvalidMessage(problem.reason, code=problem.code)
            count = 1
        record = LogRecord(
            source_id=source.id,
            received_at=received_at,
            body=body,
            path_type=path_type,
            client=route.client,
            ip=self._client_ip(scope, headers),
        )
        await self._commit(record)
        self._accepted((source.id,), count)
        await _ok(send, origin)
        return 200

    async def commit(self, record: LogRecord) -> None:
        """Append ``record`` to the event log as an accepted request is (for source functions).

        Raises:
            TooManyRequests: the log is too far behind.
            RetryLater: the log is not accepting writes, or the commit failed.
        """
        await self._commit(record)

    async def _commit(self, record: LogRecord) -> None:
        if self.committer.pending_bytes > self._max_pending:
            raise TooManyRequests(
                f"the event log is {self.committer.pending_bytes} bytes behind (limit "
                f"{self._max_pending}) — retry after {TooManyRequests.retry_after} s"
            )
        if not self.committer.running:
            raise RetryLater(
                "the event log is not accepting writes (starting or stopping) — retry shortly"
            )
        try:
            await self.committer.submit(record, asyncio.get_running_loop())
        except Exception as exc:
            raise RetryLater(
                "the event log could not commit this request — retry; nothing was stored"
            ) from exc

    async def _pixel(self, path: str, scope: Scope, headers: dict[str, str], send: Send) -> int:
        """Always a 1×1 GIF, even on error (reference §1.2); problems go to the metrics."""
        kind = path.rsplit("/", 1)[-1]
        query = scope.get("query_string", b"").decode("latin-1")
        payload = pixel.message_from_query(query) if kind in pixel.TYPES else None
        reason = None
        if payload is None:
            reason = "pixel_invalid"
        else:
            try:
                source = self._source(first_key(payload.get("writeKey")))
                body = _encode(payload)
                received_at = now_us()
                problem = message.validate(payload, kind)
                if problem is not None:
                    reason = problem.code
                else:
                    await self._commit(
                        LogRecord(
                            source_id=source.id,
                            received_at=received_at,
                            body=body,
                            path_type=kind,
                            client=True,
                            ip=self._client_ip(scope, headers),
                        )
                    )
                    self._accepted((source.id,))
            except MainstemError as exc:
                reason = exc.code
        if reason is not None:
            self._rejected((reason,))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"image/gif"),
                    (b"cache-control", b"no-cache, no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": pixel.GIF})
        return 200

    async def _settings(
        self, path: str, scope: Scope, headers: dict[str, str], send: Send, origin: str | None
    ) -> int:
        """The settings document analytics.js fetches from its CDN (reference §5.3)."""
        write_key = path[len("/v1/projects/") : -len("/settings")]
        source = self._source(write_key)
        host = headers.get("host") or "{}:{}".format(*scope.get("server") or ("localhost", 80))
        scheme = scope.get("scheme", "http")
        document = {
            "integrations": {
                "Segment.io": {
                    "apiKey": write_key,
                    "apiHost": f"{host}/v1",
                    "protocol": scheme,
                    "unbundledIntegrations": [],
                    "addBundledMetadata": True,
                    "maybeBundledConfigIds": {},
                    "versionSettings": {"version": "4.4.7", "componentTypes": ["browser"]},
                }
            },
            "plan": {
                "track": {"__default": {"enabled": True, "integrations": {}}},
                "identify": {"__default": {"enabled": True}},
                "group": {"__default": {"enabled": True}},
            },
            "edgeFunction": {},
            "analyticsNextEnabled": True,
            "middlewareSettings": {},
            "enabledMiddleware": {},
            "metrics": {"sampleRate": 0.0},
            "legacyVideoPluginsEnabled": False,
            "remotePlugins": [],
            "consentSettings": {"allCategories": []},
            "source": {"id": source.id, "name": source.name},
        }
        await _respond(send, 200, _encode(document), origin)
        return 200

    def _source(self, write_key: str | None) -> Source:
        if write_key is None:
            raise Unauthorized(
                'no write key — send it as the Basic auth username or as "writeKey" in the body',
                code="project_not_found",
            )
        source = self.workspace.source_for_key(write_key)
        if source is None:
            raise Unauthorized(
                "unknown write key — check the key against mainstem.yaml "
                "(`mainstem config check` lists the sources)",
                code="project_not_found",
            )
        if not source.enabled:
            raise Unauthorized(
                f"source {source.id!r} is disabled — set `enabled: true` in "
                "mainstem.yaml to accept its events",
                code="source_disabled",
            )
        return source

    def _client_ip(self, scope: Scope, headers: dict[str, str]) -> str | None:
        client = scope.get("client")
        peer = client[0] if client else None
        return self._proxies.client_ip(peer, headers.get("x-forwarded-for"))


def _decode_envelope(body: bytes) -> _Envelope:
    """A batch body, checked for UTF-8 and shape; the elements stay raw for the processor."""
    try:
        if not body.isascii():  # the common case is ASCII, checked at memory speed
            body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(
            f"the body is not valid JSON: not valid UTF-8: {exc.reason} at byte {exc.start}"
        ) from exc
    try:
        envelope = _envelope.decode(body)
    except msgspec.ValidationError as exc:
        raise MalformedBody(f'the body must be a batch object {{"batch": [...]}}: {exc}') from exc
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedBody("the body is not valid JSON: nested too deeply") from exc
    if envelope.batch is None:
        raise MalformedBody(
            'the body has no "batch" array — send {"batch": [...]}', code="batch_missing"
        )
    return envelope


def _decode_single(body: bytes) -> dict[str, Any]:
    try:
        single = loads(body)
    except JsonError as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(single, dict):
        raise MalformedBody(
            "the body must be a JSON object (one message)", code="message_not_object"
        )
    return single


def _first_write_key(raw: msgspec.Raw) -> object:
    try:
        return _key_only.decode(raw).writeKey
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def _headers(scope: Scope) -> dict[str, str]:
    return {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the request body is {declared} bytes; the limit is {limit} "
            "bytes — send smaller batches"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message_ = await receive()
        if message_["type"] == "http.disconnect":
            raise MalformedBody(
                "the client went away before sending the whole body", code="incomplete_body"
            )
        chunk = message_.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"the request body is over the limit of {limit} bytes — send smaller batches"
            )
        chunks.append(chunk)
        if not message_.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        body = _inflate(body, limit, encoding)
    elif encoding not in ("", "identity"):
        raise MalformedBody(
            f"Content-Encoding {encoding!r} is not supported — use gzip",
            code="unsupported_encoding",
        )
    return body


def _inflate(body: bytes, limit: int, encoding: str) -> bytes:
    """Decompress every gzip member, refusing to produce more than ``limit`` bytes, so a gzip
    bomb stops after ``limit`` bytes of work."""
    parts: list[bytes] = []
    size = 0
    remaining = body
    while remaining:
        decompressor = zlib.decompressobj(wbits=15 if encoding == "deflate" else 47)
        try:
            out = decompressor.decompress(remaining, limit + 1 - size)
        except zlib.error as exc:
            raise MalformedBody(
                f"the body is not valid {encoding}: {exc}", code="invalid_encoding"
            ) from exc
        size += len(out)
        if size > limit or decompressor.unconsumed_tail:
            raise PayloadTooLarge(
                f"the decompressed body is over the limit of {limit} bytes — send smaller batches"
            )
        if not decompressor.eof:
            raise MalformedBody(f"the {encoding} body is truncated", code="invalid_encoding")
        parts.append(out)
        remaining = decompressor.unused_data
    return b"".join(parts)


def _cors(origin: str | None) -> list[tuple[bytes, bytes]]:
    if origin is None:
        return []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"vary", b"Origin"),
    ]


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    origin: str | None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [_JSON, *_cors(origin), *(extra or ())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _ok(send: Send, origin: str | None) -> None:
    await _respond(send, 200, _OK, origin)


async def _error(send: Send, exc: MainstemError, origin: str | None) -> None:
    # `code` and `message` for analytics-python, `error` for analytics-ruby (reference §1.7).
    body = _encode(
        {"success": False, "code": exc.code, "message": exc.message, "error": exc.message}
    )
    extra: list[tuple[bytes, bytes]] = []
    if isinstance(exc, RetryLater):
        extra = [(b"retry-after", b"1")]
    elif isinstance(exc, TooManyRequests):
        # Both headers mean "seconds from now" (reference §1.7); old analytics.js reads the second.
        wait = str(exc.retry_after).encode()
        extra = [(b"retry-after", wait), (b"x-ratelimit-reset", wait)]
    await _respond(send, exc.status, body, origin, extra)


async def _preflight(send: Send, origin: str | None, headers: dict[str, str]) -> None:
    requested = headers.get("access-control-request-headers")
    response_headers = [
        (b"access-control-allow-methods", b"POST, GET, OPTIONS"),
        (
            b"access-control-allow-headers",
            requested.encode("latin-1") if requested else _CORS_HEADERS,
        ),
        (b"access-control-max-age", b"86400"),
        (b"content-length", b"0"),
        *(_cors(origin) if origin else [(b"access-control-allow-origin", b"*")]),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": response_headers})
    await send({"type": "http.response.body", "body": b""})
