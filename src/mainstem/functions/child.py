"""The worker process: ``python -m mainstem.functions.child <file> <memory-bytes>``.

It caps its own address space (``RLIMIT_AS``) before it loads the user's file, so a function that
allocates without bound gets a ``MemoryError`` (or dies) inside this process and never in the
server. The protocol runs on copies of stdin and stdout; fd 1 is then pointed at stderr, so a
``print()`` in user code goes to the server's log instead of corrupting a frame. The worker
exits when its parent goes away (end of file on the request pipe, or a changed parent pid).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Awaitable
from pathlib import Path
from types import ModuleType
from typing import Any

from mainstem.functions import protocol
from mainstem.functions.api import (
    HANDLERS,
    EventNotSupported,
    RetryError,
    Segment,
    ValidationError,
)

ENTRY_POINTS = (*HANDLERS.values(), "on_batch", "on_request")


def main(argv: list[str]) -> int:
    file, memory = argv[1], int(argv[2])
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    _exit_with_parent(os.getppid())
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        module = load(Path(file))
    except BaseException as exc:  # a SyntaxError, an ImportError, a raise at import time
        traceback.print_exc()
        protocol.write(replies, {"ready": False, "message": f"{type(exc).__name__}: {exc}"})
        return 1
    handlers = [name for name in ENTRY_POINTS if callable(getattr(module, name, None))]
    protocol.write(replies, {"ready": True, "handlers": handlers})
    name = Path(file).name
    while True:
        try:
            request = protocol.read(requests)
        except protocol.Closed:
            return 0
        reply = serve(module, name, request)
        protocol.write(replies, reply)
        if reply.get("restart"):
            return 0


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"mainstem_function_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # helper modules next to the function
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def serve(module: ModuleType, name: str, request: dict[str, Any]) -> dict[str, Any]:
    entry = str(request.get("entry"))
    payload = request.get("payload")
    settings = request.get("settings") or {}
    if entry == "events":
        results = [
            call(module, name, HANDLERS.get(str(event.get("type")), "on_?"), event, settings)
            for event in payload or []
        ]
        return {"ok": True, "results": results, "restart": any(r.get("restart") for r in results)}
    if entry == "on_request":
        from mainstem.functions.api import Request

        payload = Request.from_wire(payload or {})
    return call(module, name, entry, payload, settings)


def call(module: ModuleType, name: str, entry: str, payload: Any, settings: Any) -> dict[str, Any]:
    Segment.take()
    handler = getattr(module, entry, None)
    if not callable(handler):
        what = f"{payload.get('type')!r} events" if isinstance(payload, dict) else "this call"
        return _error("unsupported", "EventNotSupported", f"{name} has no {entry} for {what}")
    try:
        result = handler(payload, settings)
        if inspect.isawaitable(result):  # `async def on_track(...)` works too
            asyncio.run(_awaited(result))
    except RetryError as exc:
        return _error("retry", type(exc).__name__, str(exc))
    except ValidationError as exc:
        return _error("reject", type(exc).__name__, str(exc))
    except EventNotSupported as exc:
        return _error("unsupported", type(exc).__name__, str(exc))
    except MemoryError:
        # the frames that hold the memory are gone once this block ends; start afresh anyway
        return _error("error", "MemoryError", "out of memory", restart=True)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are a function's bugs too
        _print_traceback(name)
        restart = not isinstance(exc, Exception)
        return _error("exception", type(exc).__name__, str(exc), restart=restart)
    return {"ok": True, "emitted": Segment.take()}


async def _awaited(result: Awaitable[Any]) -> None:
    await result


def _error(kind: str, error: str, message: str, *, restart: bool = False) -> dict[str, Any]:
    Segment.take()
    reply: dict[str, Any] = {"ok": False, "kind": kind, "error": error, "message": message}
    if restart:
        reply["restart"] = True
    return reply


def _print_traceback(name: str) -> None:
    try:
        sys.stderr.write(f"function {name} raised:\n{traceback.format_exc()}")
        sys.stderr.flush()
    except BaseException:  # out of memory while formatting: the reply still goes out
        pass


def _exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
