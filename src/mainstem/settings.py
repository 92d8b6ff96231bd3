"""Server settings, declared once.

:data:`SETTINGS` is the single table that drives the ``settings:`` section of ``mainstem.yaml``,
the ``MAINSTEM_*`` environment variables, the ``mainstem serve`` flags and the configuration docs
(a test fails when a setting is missing from ``docs/configuration.md``).

Precedence, highest first: command-line flag, environment variable, ``settings:`` in the
workspace file, the default.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mainstem.errors import ConfigError
from mainstem.secret import Secret

_LEVELS = ("debug", "info", "warning", "error", "critical")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"24h"`` or ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 24h, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"expected a duration like 30s, 15m, 24h or 7d, got {value!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None


def parse_list(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(item).strip() for item in value)
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


def parse_str(value: object) -> str:
    return str(value)


def parse_secret(value: object) -> Secret:
    return value if isinstance(value, Secret) else Secret(str(value))


ROLES = ("all", "gateway", "worker")


def parse_warehouse(value: object) -> Secret:
    """``duckdb`` (the embedded default), ``none``, or a ``postgresql://`` URL (a secret)."""
    text = value.reveal() if isinstance(value, Secret) else str(value).strip()
    if text.lower() in {"duckdb", "none"}:
        return Secret(text.lower())
    if text.startswith(("postgresql://", "postgres://")):
        return Secret(text)
    shown = text if "@" not in text else "********"
    raise ValueError(f"expected duckdb, none or a postgresql:// URL, got {shown!r}")


def converted(
    raw: object,
    convert: Callable[[object], Any],
    where: str,
    error: Callable[[str, str], ConfigError],
) -> Any:
    """``convert(raw)`` for the workspace value at ``where`` (a path such as
    ``destinations[0].batch.size``); a conversion error or a negative number becomes
    ``error(where, message)``, which points at its line."""
    try:
        value = convert(raw)
    except ValueError as exc:
        raise error(where, f"{where.rsplit('.', 1)[-1]}: {exc}") from exc
    if isinstance(value, int | float) and value < 0:
        raise error(where, f"{where.rsplit('.', 1)[-1]} must not be negative")
    return value


def parse_role(value: object) -> str:
    role = str(value).strip().lower()
    if role not in ROLES:
        raise ValueError(f"expected one of {', '.join(ROLES)}, got {value!r}")
    return role


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[object], Any]
    metavar: str = "VALUE"
    aliases: tuple[str, ...] = ()
    """Other ``serve`` flags for the same setting (``--database`` for ``--database-url``)."""

    @property
    def env(self) -> str:
        return "MAINSTEM_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def default_text(self) -> str:
        """The default as a person would write it (``24h``, not ``86400.0``)."""
        value = self.default
        if self.parse is parse_duration:
            return format_duration(float(value))
        if isinstance(value, tuple):
            return ",".join(value) or "none"
        if isinstance(value, bool):
            return str(value).lower()
        return str(value)


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "Interface the HTTP server listens on.", parse_str, "HOST"),
    Setting("port", 8088, "TCP port of the HTTP server.", parse_int, "PORT"),
    Setting(
        "data_dir",
        ".mainstem",
        "Directory for the event log and pipeline databases.",
        parse_str,
        "DIR",
    ),
    Setting(
        "database_url",
        "",
        "PostgreSQL URL (postgresql://user:password@host/db) shared by every gateway and worker; "
        "empty: the embedded SQLite files in data_dir.",
        parse_secret,
        "URL",
        aliases=("--database",),
    ),
    Setting(
        "role",
        "all",
        "With PostgreSQL, what this process runs: gateway, worker or all.",
        parse_role,
        "ROLE",
    ),
    Setting(
        "lease_ttl",
        5.0,
        "With PostgreSQL, how long a silent gateway or worker keeps its log partitions.",
        parse_duration,
        "DURATION",
    ),
    Setting(
        "dedupe_window",
        86400.0,
        "How long a messageId is remembered to drop SDK retries (Segment: 24h).",
        parse_duration,
        "DURATION",
    ),
    Setting(
        "log_retention",
        7 * 86400.0,
        "How long processed requests stay in the event log for replay.",
        parse_duration,
        "DURATION",
    ),
    Setting(
        "trusted_proxies",
        (),
        "Proxy addresses or networks (CIDR) whose X-Forwarded-For header is believed "
        "(comma-separated).",
        parse_list,
        "ADDRS",
    ),
    Setting(
        "max_event_bytes",
        32768,
        "Largest single event, in bytes of JSON (Segment: 32 KB).",
        parse_int,
        "BYTES",
    ),
    Setting(
        "max_request_bytes",
        512000,
        "Largest request body after gzip decoding (Segment: 500 KB).",
        parse_int,
        "BYTES",
    ),
    Setting(
        "max_batch_events",
        2500,
        "Most events accepted from one batch (Segment: 2,500).",
        parse_int,
        "N",
    ),
    Setting(
        "max_pending_bytes",
        256 * 1024 * 1024,
        "Request bytes waiting for the event log before new requests get 429 with Retry-After "
        "(backpressure instead of unbounded memory).",
        parse_int,
        "BYTES",
    ),
    Setting(
        "fsync",
        True,
        "Flush the event log to disk before answering 200 (off survives process crashes "
        "but not power loss).",
        parse_bool,
        "BOOL",
    ),
    Setting(
        "log_level", "info", "Logging level: debug, info, warning or error.", parse_str, "LEVEL"
    ),
    Setting("log_format", "text", "Log line format: text or json.", parse_str, "FORMAT"),
    Setting(
        "warehouse",
        "duckdb",
        "Where events are loaded in Segment's warehouse schema: duckdb (a file in data_dir), "
        "none, or a postgresql:// URL.",
        parse_warehouse,
        "WAREHOUSE",
    ),
    Setting(
        "warehouse_interval",
        5.0,
        "How often the warehouse loader runs (sooner when a full batch is waiting).",
        parse_duration,
        "DURATION",
    ),
    Setting(
        "warehouse_batch_events",
        10000,
        "Most events per warehouse load (one transaction).",
        parse_int,
        "N",
    ),
    Setting(
        "identity",
        True,
        "Resolve stored events into merged profiles in data_dir/profiles.db (the Profile API).",
        parse_bool,
        "BOOL",
    ),
    Setting(
        "identity_batch_events",
        10000,
        "Most events per identity resolution batch (one transaction).",
        parse_int,
        "N",
    ),
)

BY_NAME: Mapping[str, Setting] = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8088
    data_dir: str = ".mainstem"
    database_url: Secret = field(default_factory=lambda: Secret(""))
    role: str = "all"
    lease_ttl: float = 5.0
    dedupe_window: float = 86400.0
    log_retention: float = 7 * 86400.0
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    max_event_bytes: int = 32768
    max_request_bytes: int = 512000
    max_batch_events: int = 2500
    max_pending_bytes: int = 256 * 1024 * 1024
    fsync: bool = True
    log_level: str = "info"
    log_format: str = "text"
    warehouse: Secret = field(default_factory=lambda: Secret("duckdb"))
    warehouse_interval: float = 5.0
    warehouse_batch_events: int = 10000
    identity: bool = True
    identity_batch_events: int = 10000


def resolve(
    file_values: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
    *,
    file: str | None = None,
    lines: Mapping[str, int] | None = None,
) -> Settings:
    """Combine the sources of settings into one validated :class:`Settings`.

    Raises:
        ConfigError: an unknown setting or a value that does not parse, naming where it came from.
    """
    values: dict[str, Any] = {}
    lines = lines or {}
    for name, raw in (file_values or {}).items():
        setting = BY_NAME.get(name)
        if setting is None:
            known = ", ".join(sorted(BY_NAME))
            raise ConfigError(
                f"unknown setting {name!r} — known settings: {known}",
                file=file,
                line=lines.get(name),
            )
        values[name] = _parse(setting, raw, f"settings.{name}", file, lines.get(name))
    for setting in SETTINGS:
        if env is not None and setting.env in env:
            values[setting.name] = _parse(setting, env[setting.env], setting.env, None, None)
        if flags is not None and flags.get(setting.name) is not None:
            values[setting.name] = _parse(setting, flags[setting.name], setting.flag, None, None)
    settings = Settings(**values)
    if settings.log_level.lower() not in _LEVELS:
        raise ConfigError(
            f"log_level must be one of {', '.join(_LEVELS)}, got {settings.log_level!r}",
            file=file,
            line=lines.get("log_level"),
        )
    for entry in settings.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                f"trusted_proxies: {entry!r} is not an IP address or network (CIDR) — write e.g. "
                "10.0.0.5 or 10.0.0.0/8",
                file=file,
                line=lines.get("trusted_proxies"),
            ) from None
    if settings.log_format not in {"text", "json"}:
        raise ConfigError(
            f"log_format must be text or json, got {settings.log_format!r}",
            file=file,
            line=lines.get("log_format"),
        )
    return settings


def _parse(setting: Setting, raw: object, where: str, file: str | None, line: int | None) -> Any:
    try:
        return setting.parse(raw)
    except ValueError as exc:
        message = f"{where}: {exc}"
        raise ConfigError(message, file=file, line=line) from exc


assert {f.name for f in fields(Settings)} == set(BY_NAME), "Settings and SETTINGS disagree"
