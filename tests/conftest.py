"""Shared fixtures: a workspace file, the app in-process, and the real server as a subprocess."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mainstem import config
from mainstem.app import App
from mainstem.processor import Processor

WRITE_KEY = "test-write-key-web"
SERVER_KEY = "test-write-key-backend"
DISABLED_KEY = "test-write-key-disabled"
ADMIN_TOKEN = "test-admin-token"
ROOT = Path(__file__).resolve().parent.parent

WORKSPACE = f"""\
admin_token: {ADMIN_TOKEN}
sources:
  - id: web
    name: Website
    write_key: {WRITE_KEY}
  - id: backend
    name: Backend
    write_key: {SERVER_KEY}
  - id: old
    name: Retired app
    write_key: {DISABLED_KEY}
    enabled: false
destinations: []
settings:
  data_dir: {{data_dir}}
"""


def pytest_report_header() -> str:
    seed = os.environ.get("PYTHONHASHSEED", "random")
    return f"mainstem: PYTHONHASHSEED={seed}, random seed {_SEED}"


_SEED = int(os.environ.get("MAINSTEM_TEST_SEED", random.randrange(1 << 30)))
random.seed(_SEED)


@pytest.fixture
def workspace_file(tmp_path: Path) -> Path:
    path = tmp_path / "mainstem.yaml"
    path.write_text(WORKSPACE.format(data_dir=tmp_path / "data"), encoding="utf-8")
    return path


class InProcess:
    """The ASGI app with a synchronous test client; the processor runs when the test says."""

    def __init__(self, app: App, client: TestClient) -> None:
        self.app = app
        self.client = client
        self._processor: Processor | None = None

    def process(self) -> int:
        if self._processor is None:
            self._processor = self.app.processor()
        return self._processor.drain()

    def events(self, **params: Any) -> list[dict[str, Any]]:
        self.process()
        response = self.client.get(
            "/api/v1/events", params=params, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert response.status_code == 200, response.text
        return [item["message"] for item in response.json()["data"]]

    def rejections(self, **params: Any) -> list[dict[str, Any]]:
        self.process()
        response = self.client.get(
            "/api/v1/rejections", params=params, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def close(self) -> None:
        if self._processor is not None:
            self._processor.store.close()


@pytest.fixture
def inproc(workspace_file: Path) -> Iterator[InProcess]:
    app = App(config.load(workspace_file), processor="none", reload_interval=0)
    with TestClient(app, client=("203.0.113.7", 50000)) as client:
        harness = InProcess(app, client)
        yield harness
        harness.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_serve(
    args: list[str],
    port: int,
    log_path: Path,
    timeout: float,
    *,
    name: str = "server",
    env: dict[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Run ``mainstem serve ARGS --port PORT`` with its output in ``log_path`` and wait until
    ``/health`` answers 200; fail with the log if it exits or stays unhealthy."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mainstem", "serve", *args, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            start_new_session=new_session,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log_path.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not become healthy: {log_path.read_text()}")


class ServerProcess:
    """``mainstem serve`` as a real subprocess on a loopback port."""

    def __init__(self, config_path: Path, data_dir: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.write_key = WRITE_KEY
        self.admin_token = ADMIN_TOKEN
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.process = start_serve(
            ["--config", str(self.config_path), "--data-dir", str(self.data_dir)],
            self.port,
            self.log_path,
            timeout,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        return code

    def events(
        self, *, expect: int | None = None, timeout: float = 30.0, **params: Any
    ) -> list[dict[str, Any]]:
        """All stored events (oldest first), waiting until at least ``expect`` are there."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._all_events(params)
            if expect is None or len(found) >= expect or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def _all_events(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = "0"
        while True:
            response = httpx.get(
                f"{self.url}/api/v1/events",
                params={**params, "after": after, "limit": 1000},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=10,
            )
            response.raise_for_status()
            page = response.json()
            found.extend(item["message"] for item in page["data"])
            if not page["data"]:
                return found
            after = page["next_after"]


@pytest.fixture
def server(workspace_file: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(workspace_file, tmp_path / "data", tmp_path / "server.log")
    proc.start()
    yield proc
    if proc.process is not None and proc.process.poll() is None:
        proc.stop()


ServerWith = Callable[..., ServerProcess]


@pytest.fixture
def server_with(
    workspace_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerWith]:
    """``server_with(MAINSTEM_SETTING="value", ...)``: the ``server`` fixture's server, started
    with those settings in its environment."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        proc = ServerProcess(workspace_file, tmp_path / "data", tmp_path / "server.log")
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.process is not None and proc.process.poll() is None:
            proc.stop()
