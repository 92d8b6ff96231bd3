"""The HTTP edge of delivery: turn a batch of messages into one request, and report what
happened as a :class:`~mainstem.destinations.retry.Response` (never raise on network errors).

* ``webhook`` — Segment's webhook destination (segment-governance.md §8.3): the message as the
  JSON body (a JSON array when batching), ``Content-Type: application/json``, custom headers,
  and with a shared secret ``X-Signature`` = hex HMAC-SHA1 of the body — for an array, of its
  first element, as Segment does.
* ``segment`` — any Segment-compatible Tracking API: ``POST {url}/v1/batch`` with
  ``{"batch": [...], "sentAt": ...}`` and the write key as the HTTP Basic username; usable to
  chain to another Mainstem, whose messageId dedupe absorbs at-least-once redelivery.
* vendor integrations (Mixpanel, Amplitude, Google Analytics 4, HubSpot) —
  :class:`Vendor` posts the requests the integration's pure mapping builds for the batch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import msgspec

from mainstem import __version__
from mainstem.destinations import retry, template
from mainstem.destinations.integrations import INTEGRATIONS
from mainstem.destinations.integrations.integration import Integration
from mainstem.destinations.retry import Response
from mainstem.destinations.spec import Destination, Endpoint

log = logging.getLogger(__name__)
USER_AGENT = f"Mainstem/{__version__}"
_encode = msgspec.json.Encoder().encode
_BODY_EXCERPT = 300


class Transport(Protocol):
    def send(
        self, messages: Sequence[dict[str, Any]], raw: Sequence[bytes] | None = None
    ) -> Response:
        """Send ``messages`` (one request) and report the outcome.

        ``raw``, when given, is each message as stored (compact JSON, the same keys in the same
        order): a transport that forwards messages unchanged may send these bytes instead of
        encoding the messages again.

        Network failures come back as ``Response(status=None, error=...)``; the caller decides
        whether to retry (:func:`~mainstem.destinations.retry.classify`). Called from the
        destination's own thread only.
        """
        ...

    def close(self) -> None:
        """Idempotent."""
        ...


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


class _Http:
    def __init__(self, endpoint: Endpoint, transport: httpx.BaseTransport | None = None) -> None:
        self.endpoint = endpoint
        self.client = httpx.Client(
            timeout=endpoint.timeout,
            headers={"User-Agent": USER_AGENT, **dict(endpoint.headers)},
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # never route deliveries through a proxy from the environment
        )

    def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        params: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        headers = {"Content-Type": "application/json", **headers}
        try:
            reply = self.client.post(url, content=body, headers=headers, params=params)
        except httpx.TimeoutException as exc:
            return Response(
                None, f"timeout after {self.endpoint.timeout:g}s ({type(exc).__name__})"
            )
        except httpx.HTTPError as exc:
            return Response(None, f"{type(exc).__name__}: {exc}")
        return Response(
            reply.status_code,
            retry_after=reply.headers.get("retry-after"),
            body=reply.text[:_BODY_EXCERPT],
        )

    def close(self) -> None:
        self.client.close()


class Webhook(_Http):
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        batched: bool,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(endpoint, transport)
        self.batched = batched

    def send(
        self, messages: Sequence[dict[str, Any]], raw: Sequence[bytes] | None = None
    ) -> Response:
        if raw is not None:
            body = b"[" + b",".join(raw) + b"]" if self.batched else raw[0]
            signed = raw[0]
        elif self.batched:
            body = _encode(list(messages))
            signed = _encode(messages[0])
        else:
            (message,) = messages
            body = signed = _encode(message)
        headers: dict[str, str] = {}
        if self.endpoint.secret is not None:
            headers["X-Signature"] = signature(self.endpoint.secret.reveal(), signed)
        return self.post(self.endpoint.url, body, headers)


class SegmentApi(_Http):
    def send(
        self, messages: Sequence[dict[str, Any]], raw: Sequence[bytes] | None = None
    ) -> Response:
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if raw is not None:
            body = b'{"batch":[' + b",".join(raw) + b'],"sentAt":' + _encode(sent_at) + b"}"
        else:
            body = _encode({"batch": list(messages), "sentAt": sent_at})
        assert self.endpoint.secret is not None, "spec requires a write_key"
        user = base64.b64encode(f"{self.endpoint.secret.reveal()}:".encode()).decode("ascii")
        url = self.endpoint.url.rstrip("/") + "/v1/batch"
        return self.post(url, body, {"Authorization": f"Basic {user}"})


class Slack(_Http):
    """A Slack incoming webhook: ``{"text": <template rendered with the message>}``."""

    def send(
        self, messages: Sequence[dict[str, Any]], raw: Sequence[bytes] | None = None
    ) -> Response:
        (message,) = messages
        text = template.render(self.endpoint.template or template.DEFAULT, message)
        return self.post(self.endpoint.url, _encode({"text": text}), {})


class Vendor(_Http):
    """A vendor integration: one batch becomes the requests its mapping builds (e.g. Mixpanel's
    ``/import`` and ``/engage``), sent in order; the first failure is the batch's answer.

    The courier retries a failed batch as a whole; requests of that batch the vendor already
    accepted are not sent again (remembered by digest and position until the batch succeeds or
    another batch comes), so a vendor without dedupe does not get them twice from one retry
    loop.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        integration: Integration,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(endpoint, transport)
        self.integration = integration
        self._batch: tuple[object, ...] = ()
        self._accepted: set[bytes] = set()

    def send(
        self, messages: Sequence[dict[str, Any]], raw: Sequence[bytes] | None = None
    ) -> Response:
        batch = tuple(message.get("messageId") for message in messages)
        if batch != self._batch:
            self._batch, self._accepted = batch, set()
        try:
            requests = self.integration.requests(messages, self.endpoint.options)
        except Exception as exc:  # a mapping bug must not wedge the destination: dead letters
            log.exception("%s: cannot map a batch", self.integration.display_name)
            error = f"cannot map the batch for {self.integration.display_name}: {exc!r}"
            return Response(None, error, final=True)
        last = Response(200)
        for index, request in enumerate(requests):
            body = _encode(request.body)
            # the position too: two requests of one batch may be equal and both needed
            digest = hashlib.blake2b(
                _encode([index, request.path, request.params]) + body, digest_size=16
            ).digest()
            if digest in self._accepted:
                continue
            url = self.endpoint.url + request.path
            last = self.integration.answer(
                request, self.post(url, body, dict(request.headers), request.params)
            )
            if retry.classify(last) != "ok":
                return last
            self._accepted.add(digest)
        self._batch, self._accepted = (), set()  # all accepted: nothing left to remember
        return last


def for_destination(
    destination: Destination, transport: httpx.BaseTransport | None = None
) -> Transport:
    """The transport of ``destination``'s type, with its own connection pool."""
    if destination.type == "webhook":
        return Webhook(
            destination.endpoint, batched=destination.batch_size > 1, transport=transport
        )
    if destination.type == "segment":
        return SegmentApi(destination.endpoint, transport)
    if destination.type == "slack":
        return Slack(destination.endpoint, transport)
    if destination.type == "function" and destination.function is not None:
        from mainstem.functions.destination import FunctionTransport  # runs user code

        return FunctionTransport(destination, destination.function)
    if destination.type in INTEGRATIONS:
        return Vendor(destination.endpoint, INTEGRATIONS[destination.type], transport)
    raise ValueError(f"no transport for destination type {destination.type!r}")
