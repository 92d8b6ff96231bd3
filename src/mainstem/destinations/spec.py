"""The ``destinations:`` part of ``mainstem.yaml``: typed, validated, every error with its line.

::

    destinations:
      - id: hooks
        type: webhook                      # webhook | segment | slack | function | mixpanel
                                           # | amplitude | ga4 | hubspot
        enabled: true
        name: Webhooks                     # the key the `integrations` object uses
        sources: [web]                     # default: every source
        consent_categories: [Analytics]    # all must be true in categoryPreferences
        types: [track, identify]           # default: every type
        filters:
          - if: "type = 'track' and event = 'Debug'"
            actions: [{type: drop}]
        settings: {url: https://example.com/hook, secret: "${HOOK_SECRET}"}
        batch: {size: 100, interval: 5s}
        rate_limit: 50/s
        concurrency: 4                     # requests in flight, one user's events in order
        retry_window: 4h
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mainstem import settings as settings_mod
from mainstem.destinations import fql, template
from mainstem.destinations.integrations import INTEGRATIONS
from mainstem.destinations.integrations.integration import Integration, Option
from mainstem.errors import ConfigError
from mainstem.functions import spec as function_spec
from mainstem.secret import Secret

Error = Callable[[str, str], ConfigError]
"""``error(path, message)`` builds a :class:`ConfigError` pointing at the line of ``path``."""

MESSAGE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_KEYS = (
    "id",
    "type",
    "name",
    "enabled",
    "sources",
    "consent_categories",
    "types",
    "filters",
    "settings",
    "batch",
    "rate_limit",
    "concurrency",
    "retry_window",
    "function",
)
MAX_CONCURRENCY = 16
_MAX_FILTERS = 10  # Segment's limit per destination (segment-governance.md §2.2)
_ACTIONS = ("drop", "sample", "drop_properties", "allow_properties")


@dataclass(frozen=True, slots=True)
class Kind:
    """What a destination type needs in ``settings``."""

    display_name: str
    secret_key: str | None
    secret_required: bool
    batch_size: int
    max_batch: int
    extra_keys: tuple[str, ...] = ()
    types: tuple[str, ...] = MESSAGE_TYPES
    integration: Integration | None = None
    """Set for vendor integrations (Mixpanel, …), whose settings it declares."""


KINDS: dict[str, Kind] = {
    "webhook": Kind("Webhooks", "secret", False, 1, 4000),
    "segment": Kind("Segment", "write_key", True, 100, 500),
    "slack": Kind("Slack", None, False, 1, 1, ("template",)),
    "function": Kind("Function", None, False, 1, 400),  # Segment batches up to 400 (§8.4)
    **{
        name: Kind(
            item.display_name,
            None,
            False,
            item.batch_size,
            item.max_batch,
            types=item.types,
            integration=item,
        )
        for name, item in INTEGRATIONS.items()
    },
}


@dataclass(frozen=True, slots=True)
class Action:
    type: str
    """One of drop, sample, drop_properties, allow_properties."""
    percent: float = 1.0
    path: str | None = None
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Filter:
    condition: str
    expr: fql.Expr
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    secret: Secret | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 5.0  # Segment's webhook destination waits 5 s (§8.3)
    template: str | None = None
    """Slack: the message text, with ``{{path}}`` placeholders."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Vendor integrations: their declared settings (secrets as :class:`Secret`)."""


@dataclass(frozen=True, slots=True)
class Destination:
    id: str
    type: str
    endpoint: Endpoint
    name: str = ""
    enabled: bool = True
    sources: tuple[str, ...] | None = None
    """``None``: every source."""
    consent_categories: tuple[str, ...] = ()
    types: tuple[str, ...] = MESSAGE_TYPES
    filters: tuple[Filter, ...] = ()
    batch_size: int = 1
    batch_interval: float = 1.0
    rate_limit: float | None = None
    """Events per second, ``None`` for no limit."""
    concurrency: int = 1
    """Requests in flight at once, each for different users (one user's events stay in order)."""
    retry_window: float = 4 * 3600.0
    function: function_spec.FunctionSpec | None = None
    """``type: function``: the user's file, its limits and settings."""


def parse(
    raw: object, error: Error, known_sources: tuple[str, ...], base: Path = Path(".")
) -> tuple[Destination, ...]:
    """Validate the ``destinations`` list.

    Raises:
        ConfigError: naming the line of the offending value and the fix.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise error("destinations", "destinations must be a list (use [] for none)")
    result: list[Destination] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        destination = _destination(item, f"destinations[{index}]", error, known_sources, base)
        if destination.id in seen:
            raise error(
                f"destinations[{index}].id",
                f"destination id {destination.id!r} is used twice (also at "
                f"{seen[destination.id]}) — ids must be unique",
            )
        seen[destination.id] = f"destinations[{index}]"
        result.append(destination)
    return tuple(result)


def _destination(
    item: object, where: str, error: Error, known_sources: tuple[str, ...], base: Path
) -> Destination:
    if not isinstance(item, dict):
        raise error(where, "each destination must be a mapping with id, type and settings")
    for key in item:
        if key not in _KEYS:
            raise error(
                f"{where}.{key}",
                f"unknown key {key!r} in a destination — allowed: {', '.join(_KEYS)}",
            )
    dest_id = item.get("id")
    if not isinstance(dest_id, str) or not _ID.match(dest_id):
        raise error(
            f"{where}.id" if "id" in item else where,
            "destination id must be lowercase letters, digits, - or _ (e.g. `id: hooks`)",
        )
    kind_name = item.get("type")
    if kind_name not in KINDS:
        raise error(
            f"{where}.type" if "type" in item else where,
            f"destination {dest_id!r} needs a type — one of: {', '.join(KINDS)} (e.g. "
            "`type: webhook`)",
        )
    kind = KINDS[str(kind_name)]
    name = item.get("name", kind.display_name)
    if not isinstance(name, str) or not name:
        raise error(f"{where}.name", "name must be a non-empty string")
    sources = item.get("sources")
    if sources is not None:
        sources = tuple(_strings(sources, f"{where}.sources", error, "sources"))
        for position, source in enumerate(sources):
            if source not in known_sources:
                raise error(
                    f"{where}.sources[{position}]",
                    f"destination {dest_id!r} names source {source!r}, which is not in sources "
                    f"— use one of: {', '.join(known_sources)}",
                )
    types = tuple(_strings(item.get("types", list(kind.types)), f"{where}.types", error, "types"))
    for position, message_type in enumerate(types):
        if message_type not in kind.types:
            raise error(
                f"{where}.types[{position}]",
                f"unknown message type {message_type!r} — use: {', '.join(MESSAGE_TYPES)}"
                if message_type not in MESSAGE_TYPES
                else f"{kind.display_name} takes no {message_type} calls — use: "
                f"{', '.join(kind.types)}",
            )
    batch = item.get("batch") or {}
    if not isinstance(batch, dict) or set(batch) - {"size", "interval"}:
        raise error(f"{where}.batch", "batch must be a mapping like `{size: 100, interval: 5s}`")
    size = settings_mod.converted(
        batch.get("size", kind.batch_size), settings_mod.parse_int, f"{where}.batch.size", error
    )
    if not 1 <= size <= kind.max_batch:
        raise error(
            f"{where}.batch.size",
            f"batch size must be between 1 and {kind.max_batch} for {kind_name} destinations",
        )
    rate = item.get("rate_limit")
    function, endpoint = _function(item, where, dest_id, kind, error, base)
    return Destination(
        id=dest_id,
        type=str(kind_name),
        name=name,
        endpoint=endpoint,
        enabled=_bool(item.get("enabled", True), f"{where}.enabled", error),
        sources=sources,
        consent_categories=tuple(
            _strings(
                item.get("consent_categories", []),
                f"{where}.consent_categories",
                error,
                "consent_categories",
            )
        ),
        types=types,
        filters=_filters(item.get("filters", []), f"{where}.filters", error),
        batch_size=size,
        batch_interval=settings_mod.converted(
            batch.get("interval", 1.0),
            settings_mod.parse_duration,
            f"{where}.batch.interval",
            error,
        ),
        rate_limit=None if rate is None else _rate(rate, f"{where}.rate_limit", error),
        concurrency=_concurrency(item.get("concurrency", 1), f"{where}.concurrency", error),
        retry_window=settings_mod.converted(
            item.get("retry_window", "4h"),
            settings_mod.parse_duration,
            f"{where}.retry_window",
            error,
        ),
        function=function,
    )


def _function(
    item: dict[str, Any], where: str, dest_id: str, kind: Kind, error: Error, base: Path
) -> tuple[function_spec.FunctionSpec | None, Endpoint]:
    """``type: function`` takes a ``function:`` block instead of ``settings``."""
    if kind is not KINDS["function"]:
        if "function" in item:
            raise error(f"{where}.function", "function: is only for `type: function`")
        return None, _endpoint(item.get("settings"), where, dest_id, kind, error)
    if "settings" in item:
        raise error(
            f"{where}.settings",
            "a function destination takes its settings under `function: {settings: {...}}`",
        )
    if "function" not in item:
        raise error(where, f"destination {dest_id!r} needs `function: {{file: functions/x.py}}`")
    spec = function_spec.parse(item["function"], f"{where}.function", error, base, "destination")
    return spec, Endpoint(spec.file.as_uri(), timeout=spec.limits.timeout)


def _endpoint(raw: object, where: str, dest_id: str, kind: Kind, error: Error) -> Endpoint:
    path = f"{where}.settings"
    anchor = where if raw is None else path  # a missing `settings:` has no line of its own
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise error(path, "settings must be a mapping like `{url: https://...}`")
    if kind.integration is not None:
        return _vendor(raw, path, anchor, dest_id, kind.integration, error)
    allowed = {"url", "headers", "timeout", *kind.extra_keys}
    if kind.secret_key:
        allowed.add(kind.secret_key)
    for key in raw:
        if key not in allowed:
            raise error(
                f"{path}.{key}",
                f"unknown setting {key!r} for a {kind.display_name} destination — allowed: "
                f"{', '.join(sorted(allowed))}",
            )
    url = raw.get("url")
    if not isinstance(url, str) or not url:
        raise error(
            path if "url" not in raw else f"{path}.url",
            f"destination {dest_id!r} has no url — add `url: https://...` under settings",
        )
    if not url.startswith(("http://", "https://")):
        raise error(f"{path}.url", f"url must start with http:// or https://, got {url!r}")
    secret: Secret | None = None
    if kind.secret_key is not None:
        value = raw.get(kind.secret_key)
        if value is None and kind.secret_required:
            raise error(
                path,
                f"destination {dest_id!r} has no {kind.secret_key} — add "
                f"`{kind.secret_key}: ${{{dest_id.upper().replace('-', '_')}_"
                f"{kind.secret_key.upper()}}}` under settings",
            )
        if value is not None:
            if not isinstance(value, str) or not value:
                raise error(f"{path}.{kind.secret_key}", f"{kind.secret_key} must be a string")
            secret = Secret(value)
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
    ):
        raise error(f"{path}.headers", "headers must be a mapping of name: string value")
    timeout = settings_mod.converted(
        raw.get("timeout", 5.0), settings_mod.parse_duration, f"{path}.timeout", error
    )
    text: str | None = None
    if "template" in kind.extra_keys:
        text = raw.get("template", template.DEFAULT)
        if not isinstance(text, str) or not text.strip():
            raise error(
                f"{path}.template", "template must be a string like '{{event}} by {{userId}}'"
            )
        try:
            template.check(text)
        except fql.FqlError as exc:
            raise error(f"{path}.template", f"cannot use the template: {exc}") from exc
    return Endpoint(url, secret, tuple(headers.items()), timeout, text)


def _vendor(
    raw: dict[str, Any],
    path: str,
    anchor: str,
    dest_id: str,
    integration: Integration,
    error: Error,
) -> Endpoint:
    """The settings of a vendor integration: ``endpoint``, ``timeout`` and its options."""
    declared = {option.name: option for option in integration.options}
    allowed = ("endpoint", "timeout", *declared)
    for key in raw:
        if key not in allowed:
            raise error(
                f"{path}.{key}",
                f"unknown setting {key!r} for a {integration.display_name} destination — "
                f"allowed: {', '.join(allowed)}",
            )
    url = raw.get("endpoint", integration.endpoint)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise error(f"{path}.endpoint", f"endpoint must be a base URL like {integration.endpoint}")
    options: dict[str, Any] = {}
    for option in integration.options:
        value = _option(raw.get(option.name), option, f"{path}.{option.name}", error)
        if value is None and option.required:
            env = f"{dest_id.upper().replace('-', '_')}_{option.name.upper()}"
            example = f"${{{env}}}" if option.secret else "..."
            raise error(
                anchor,
                f"destination {dest_id!r} has no {option.name} — add `{option.name}: "
                f"{example}` under settings",
            )
        if value is not None:
            options[option.name] = value
    for option in integration.options:
        missing = [name for name in option.needs if option.name in options and name not in options]
        if missing:
            raise error(
                f"{path}.{option.name}",
                f"{option.name} needs {' and '.join(missing)} — add them under settings",
            )
    timeout = settings_mod.converted(
        raw.get("timeout", 5.0), settings_mod.parse_duration, f"{path}.timeout", error
    )
    return Endpoint(url.rstrip("/"), timeout=timeout, options=options)


def _option(raw: object, option: Option, where: str, error: Error) -> Any:
    if raw is None:
        return option.default
    if option.kind == "int":
        return settings_mod.converted(raw, settings_mod.parse_int, where, error)
    if option.kind == "bool":
        if isinstance(raw, str):
            with contextlib.suppress(ValueError):
                raw = settings_mod.parse_bool(raw)
        if not isinstance(raw, bool):
            raise error(where, f"{option.name} must be true or false")
        return raw
    if option.kind == "map":
        if not isinstance(raw, dict) or not all(
            isinstance(key, str) and isinstance(value, str) and value for key, value in raw.items()
        ):
            raise error(where, f"{option.name} must be a mapping of name: string")
        return dict(raw)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw:
        raise error(where, f"{option.name} must be a non-empty string")
    return Secret(raw) if option.secret else raw


def _filters(raw: object, where: str, error: Error) -> tuple[Filter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise error(where, "filters must be a list of `{if: <FQL>, actions: [...]}`")
    if len(raw) > _MAX_FILTERS:
        raise error(where, f"at most {_MAX_FILTERS} filters per destination, got {len(raw)}")
    result: list[Filter] = []
    for index, item in enumerate(raw):
        path = f"{where}[{index}]"
        if not isinstance(item, dict) or set(item) - {"if", "actions"}:
            raise error(path, "a filter is a mapping `{if: <FQL condition>, actions: [...]}`")
        condition = item.get("if", "all")
        if not isinstance(condition, str):
            raise error(f"{path}.if", "if must be an FQL condition in quotes, or all")
        try:
            expr = fql.parse(condition)
        except fql.FqlError as exc:
            raise error(f"{path}.if", f"cannot parse the condition {condition!r}: {exc}") from exc
        actions = item.get("actions")
        if not isinstance(actions, list) or not actions:
            raise error(
                path if "actions" not in item else f"{path}.actions",
                "a filter needs actions — e.g. `actions: [{type: drop}]`",
            )
        result.append(
            Filter(
                condition,
                expr,
                tuple(_action(a, f"{path}.actions[{i}]", error) for i, a in enumerate(actions)),
            )
        )
    return tuple(result)


def _action(raw: object, where: str, error: Error) -> Action:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or kind not in _ACTIONS:
        raise error(where, f"an action needs a type — one of: {', '.join(_ACTIONS)}")
    if kind == "drop":
        return Action("drop")
    if kind == "sample":
        percent = raw.get("percent")
        if (
            not isinstance(percent, int | float)
            or isinstance(percent, bool)
            or not 0 <= percent <= 1
        ):
            raise error(where, "a sample action needs `percent:` between 0 and 1 (0.1 keeps 10%)")
        path = raw.get("path")
        if path is not None and not isinstance(path, str):
            raise error(where, "path must be a field path like userId")
        return Action("sample", percent=float(percent), path=path)
    fields = raw.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise error(
            where,
            f"a {kind} action needs `fields:`, a map of object path to keys — e.g. "
            '`fields: {properties: [email], "": [userId]}`',
        )
    checked: dict[str, tuple[str, ...]] = {}
    for key, names in fields.items():
        checked[str(key)] = tuple(_strings(names, f"{where}.fields.{key}", error, "fields"))
    return Action(str(kind), fields=checked)


def _strings(raw: object, where: str, error: Error, name: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise error(where, f"{name} must be a list of strings, e.g. `{name}: [a, b]`")
    return list(raw)


def _bool(raw: object, where: str, error: Error) -> bool:
    if isinstance(raw, str):  # e.g. `enabled: ${HOOKS_ENABLED:-true}`
        with contextlib.suppress(ValueError):
            raw = settings_mod.parse_bool(raw)
    if not isinstance(raw, bool):
        raise error(where, "enabled must be true or false")
    return raw


def _concurrency(raw: object, where: str, error: Error) -> int:
    value = int(settings_mod.converted(raw, settings_mod.parse_int, where, error))
    if not 1 <= value <= MAX_CONCURRENCY:
        raise error(
            where, f"concurrency must be between 1 and {MAX_CONCURRENCY} requests in flight"
        )
    return value


def _rate(raw: object, where: str, error: Error) -> float:
    text = str(raw).strip()
    if text.endswith("/s"):
        text = text[:-2].strip()
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if isinstance(raw, bool) or rate <= 0:
        raise error(where, f"rate_limit must be events per second like `50/s`, got {raw!r}")
    return rate
