"""SDK-like client threads for the crash and fault suites: batches re-sent with the same
messageIds until they get their ``200``, as the Segment SDKs do, the next batch only after it.

Only ``503`` (nothing was stored, retry) may answer while a process or the database is down;
any other non-``200`` answer is recorded in ``unexpected`` as a server bug.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from tests.conftest import WRITE_KEY

BATCH = 10
RETRYABLE = {503}


class BatchSender(threading.Thread):
    """Posts ``messages(n)`` for n = 0, 1, … to ``url``/v1/batch; subclasses say what a batch
    holds. ``sent``/``acked`` are messageIds; ``acked_batches`` the acknowledged batches in
    order; ``retried_ok`` how many were acknowledged only on a re-send."""

    def __init__(self, name: str, url: str, stop: threading.Event, pause: float) -> None:
        super().__init__(name=name, daemon=True)
        self.url = url
        self.halt = stop
        self.pause = pause
        self.lock = threading.Lock()
        self.sent: set[str] = set()
        self.acked: set[str] = set()
        self.acked_batches: list[list[str]] = []
        self.oks = 0
        self.failures = 0
        self.retried_ok = 0
        self.unexpected: list[tuple[int, str]] = []
        self.crash: BaseException | None = None

    def messages(self, n: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced by the test, never swallowed
            self.crash = exc

    def _loop(self) -> None:
        n = 0
        pending: list[dict[str, Any]] | None = None
        timeout = httpx.Timeout(5.0, connect=1.0)
        with httpx.Client(base_url=self.url, timeout=timeout) as client:
            while not self.halt.is_set():
                retry = pending is not None
                if pending is None:
                    pending = self.messages(n)
                    n += 1
                ids = [message["messageId"] for message in pending]
                with self.lock:
                    self.sent.update(ids)
                try:
                    response = client.post(
                        "/v1/batch", json={"writeKey": WRITE_KEY, "batch": pending}
                    )
                except httpx.TransportError:
                    with self.lock:
                        self.failures += 1
                    self.halt.wait(self.pause)
                    continue
                if response.status_code == 200:
                    with self.lock:
                        self.acked.update(ids)
                        self.acked_batches.append(ids)
                        self.oks += 1
                        self.retried_ok += retry
                    pending = None
                    continue
                with self.lock:
                    self.failures += 1
                    if response.status_code not in RETRYABLE:
                        self.unexpected.append((response.status_code, response.text[:200]))
                self.halt.wait(self.pause)

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return self.oks, self.failures
