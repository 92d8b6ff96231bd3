"""Running the HTTP server: uvicorn (uvloop + httptools) around :class:`mainstem.app.App`.

uvicorn handles SIGTERM/SIGINT gracefully: it stops accepting, lets in-flight requests finish
(their events are committed before they are answered), then runs the app's shutdown, which
drains the log writer and stops the processor.
"""

from __future__ import annotations

import socket
import sys
from types import FrameType

import uvicorn
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from mainstem import __version__
from mainstem.app import App
from mainstem.config import Workspace
from mainstem.logs import setup_logging


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, workspace: Workspace) -> None:
        super().__init__(config)
        self.workspace = workspace

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after shutting down; a graceful stop should exit 0.
        self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            port = self.config.port
            for server in getattr(self, "servers", []):
                for sock in server.sockets:
                    port = sock.getsockname()[1]
            banner(self.workspace, self.config.host, port)


def banner(workspace: Workspace, host: str, port: int) -> None:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url = f"http://{shown_host}:{port}"
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("URL", url)
    table.add_row("Web UI", f"{url}/ui  (admin token below)")
    table.add_row("Tracking API", f"{url}/v1/batch  (SDK host: {url})")
    for source in workspace.sources:
        state = "" if source.enabled else "  [red](disabled)[/red]"
        table.add_row(f"Write key ({source.id})", source.write_key.reveal() + state)
    table.add_row("Admin token", workspace.admin_token.reveal())
    follow = "mainstem events --follow" + (f" --config {workspace.path}" if workspace.path else "")
    table.add_row("Events", f"{url}/api/v1/events   or   {follow}")
    table.add_row("Data dir", workspace.settings.data_dir)
    table.add_row("Config", workspace.path or "(none)")
    Console(file=sys.stderr).print(Panel(table, title=f"Mainstem {__version__}", expand=False))


def serve(workspace: Workspace) -> None:
    settings = workspace.settings
    setup_logging(settings.log_level, settings.log_format)
    app = App(workspace)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        proxy_headers=False,  # X-Forwarded-For is believed only from trusted_proxies (gateway)
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    _Server(config, workspace).run()
