"""The HTTP edge of delivery: turn a batch of messages into one request, and report what
happened as a :class:`~mainstem.destinations.retry.Response` (never raise on network errors).

* ``webhook`` — Segment's webhook destination (segment-governance.md §8.3): the message as the
  JSON body (a JSON array when batching), ``Content-Type: application/json``, custom headers,
  and with a shared secret ``X-Signature`` = hex HMAC-SHA1 of the body — for an array, of its
  first element, as Segment does.
* ``segment`` — any Segment-compatible Tracking API: ``POST {url}/v1/batch`` with
  ``{"batch": [...], "sentAt": ...}`` and the write key as the HTTP Basic username; usable to
  chain to another Mainstem, whose messageId dedupe absorbs at-least-once redelivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import msgspec

from mainstem import __version__
from mainstem.destinations import template
from mainstem.destinations.retry import Response
from mainstem.destinations.spec import Destination, Endpoint

USER_AGENT = f"Mainstem/{__version__}"
_encode = msgspec.json.Encoder().encode
_BODY_EXCERPT = 300


class Transport(Protocol):
    def send(self, messages: Sequence[dict[str, Any]]) -> Response:
        """Send ``messages`` (one request) and report the outcome.

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

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        headers = {"Content-Type": "application/json", **headers}
        try:
            reply = self.client.post(url, content=body, headers=headers)
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

    def send(self, messages: Sequence[dict[str, Any]]) -> Response:
        if self.batched:
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
    def send(self, messages: Sequence[dict[str, Any]]) -> Response:
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = _encode({"batch": list(messages), "sentAt": sent_at})
        assert self.endpoint.secret is not None, "spec requires a write_key"
        user = base64.b64encode(f"{self.endpoint.secret.reveal()}:".encode()).decode("ascii")
        url = self.endpoint.url.rstrip("/") + "/v1/batch"
        return self.post(url, body, {"Authorization": f"Basic {user}"})


class Slack(_Http):
    """A Slack incoming webhook: ``{"text": <template rendered with the message>}``."""

    def send(self, messages: Sequence[dict[str, Any]]) -> Response:
        (message,) = messages
        text = template.render(self.endpoint.template or template.DEFAULT, message)
        return self.post(self.endpoint.url, _encode({"text": text}), {})


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
    raise ValueError(f"no transport for destination type {destination.type!r}")
