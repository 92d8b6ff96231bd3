"""The ``function:`` block of a source or destination in ``mainstem.yaml``.

::

    function:
      file: functions/crm.py     # relative to mainstem.yaml
      timeout: 5s                # per call; the worker is killed and replaced after it
      memory: 256MB              # address space of each worker process; 0 for no limit
      concurrency: 2             # worker processes, so calls at once
      settings: {api_key: "${CRM_KEY}"}   # the handlers' `settings` argument

The file is parsed (not run) when the workspace loads, so a syntax error or a missing handler is
a configuration error with a line number, not a failure at the first event.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mainstem import settings as settings_mod
from mainstem.errors import ConfigError
from mainstem.functions.api import HANDLERS
from mainstem.functions.runner import Limits

Error = Callable[[str, str], ConfigError]
Role = Literal["destination", "source"]

KEYS = ("file", "timeout", "memory", "concurrency", "settings")
DESTINATION_ENTRIES = (*HANDLERS.values(), "on_batch")
_MEMORY = re.compile(r"^\s*(\d+)\s*(mb|gb|m|g)?\s*$", re.IGNORECASE)
_MAX_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    file: Path
    """Absolute."""
    limits: Limits = field(default_factory=Limits)
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """Passed to every call; may hold secrets, so it is left out of the repr."""
    handlers: tuple[str, ...] = ()
    """The entry points the file defines, as found when the workspace loaded."""


def parse(raw: object, where: str, error: Error, base: Path, role: Role) -> FunctionSpec:
    """Validate a ``function:`` block; ``base`` is the directory of ``mainstem.yaml``.

    Raises:
        ConfigError: naming the line and the fix.
    """
    example = "`function: {file: functions/" + (
        "crm.py}`" if role == "destination" else "hook.py}`"
    )
    if not isinstance(raw, dict):
        raise error(where, f"function must be a mapping like {example}")
    for key in raw:
        if key not in KEYS:
            raise error(
                f"{where}.{key}", f"unknown key {key!r} in function — allowed: {', '.join(KEYS)}"
            )
    name = raw.get("file")
    if not isinstance(name, str) or not name:
        raise error(where if "file" not in raw else f"{where}.file", f"add {example}")
    file = Path(name) if Path(name).is_absolute() else (base / name).resolve()
    handlers = _handlers(file, f"{where}.file", error)
    wanted = DESTINATION_ENTRIES if role == "destination" else ("on_request",)
    if not set(wanted) & set(handlers):
        raise error(
            f"{where}.file",
            f"{file} defines none of {', '.join(wanted)} — a {role} function needs "
            + (
                "at least one, e.g. `def on_track(event, settings):`"
                if role == "destination"
                else "`def on_request(request, settings):`"
            ),
        )
    timeout = settings_mod.converted(
        raw.get("timeout", "5s"), settings_mod.parse_duration, f"{where}.timeout", error
    )
    if timeout <= 0:
        raise error(f"{where}.timeout", "timeout must be more than 0 (e.g. `timeout: 5s`)")
    memory = settings_mod.converted(
        raw.get("memory", "256MB"), parse_memory, f"{where}.memory", error
    )
    concurrency = settings_mod.converted(
        raw.get("concurrency", 2), settings_mod.parse_int, f"{where}.concurrency", error
    )
    if not 1 <= concurrency <= _MAX_CONCURRENCY:
        raise error(f"{where}.concurrency", f"concurrency must be between 1 and {_MAX_CONCURRENCY}")
    values = raw.get("settings", {})
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise error(f"{where}.settings", "settings must be a mapping of name: value")
    return FunctionSpec(file, Limits(timeout, memory, concurrency), values, handlers)


def parse_memory(value: object) -> int:
    """Bytes from ``256MB``, ``1GB``, or a number of megabytes; ``0`` means no limit."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 256MB, got {value!r}")
    match = _MEMORY.match(str(value))
    if match is None:
        raise ValueError(f"expected a size like 256MB or 1GB, got {value!r}")
    unit = (match.group(2) or "mb").lower()[0]
    megabytes = int(match.group(1)) * (1024 if unit == "g" else 1)
    if 0 < megabytes < 64:
        raise ValueError(f"at least 64MB is needed to start Python, got {value!r}")
    return megabytes * 1024 * 1024


def _handlers(file: Path, where: str, error: Error) -> tuple[str, ...]:
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except FileNotFoundError:
        raise error(where, f"no such file: {file}") from None
    except OSError as exc:
        raise error(where, f"cannot read {file}: {exc}") from exc
    except SyntaxError as exc:
        raise error(where, f"{file}:{exc.lineno}: {exc.msg} — fix the function's code") from exc
    return tuple(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name in (*DESTINATION_ENTRIES, "on_request")
    )
