"""A source's ``tracking_plan:`` and ``enforcement:`` in ``mainstem.yaml`` (reference §1.5).

Example::

    sources:
      - id: web
        write_key: ...
        tracking_plan: plans/web.yaml      # or a Segment export: plans/web.json
        enforcement:
          track: {unplanned_events: block, unplanned_properties: omit,
                  event_on_violation: allow, properties_on_violation: omit,
                  common_on_violation: allow}
          identify: {unplanned_traits: omit, traits_on_violation: omit, common_on_violation: block}
          group: {unplanned_traits: allow, traits_on_violation: allow, common_on_violation: allow}
          forward_blocked_events_to: audit
          forward_violations_to: audit
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mainstem.errors import ConfigError
from mainstem.plans import segment_format, yaml_format
from mainstem.plans.enforcement import Controls, Enforcement
from mainstem.plans.model import PlanError, TrackingPlan

ErrorAt = Callable[[str, str], ConfigError]
SOURCE_KEYS = ("tracking_plan", "enforcement")

# config name → (Controls field, allowed values), per message type
_TRACK = {
    "unplanned_events": ("unplanned_events", ("allow", "block")),
    "unplanned_properties": ("unplanned_fields", ("allow", "omit")),
    "event_on_violation": ("event_on_violation", ("allow", "block")),
    "properties_on_violation": ("fields_on_violation", ("allow", "omit")),
    "common_on_violation": ("common_on_violation", ("allow", "block", "omit")),
}
_TRAITS = {
    "unplanned_traits": ("unplanned_fields", ("allow", "omit")),
    "traits_on_violation": ("fields_on_violation", ("allow", "omit")),
    "common_on_violation": ("common_on_violation", ("allow", "block", "omit")),
}
_FORWARD = {
    "forward_blocked_events_to": "forward_blocked_to",
    "forward_violations_to": "forward_violations_to",
}


def load_plan(path: Path) -> TrackingPlan:
    """A plan file in either format: ``.json`` is a Segment export, anything else our YAML.

    Raises:
        PlanError: unreadable or invalid, located at ``file:line``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read the plan: {exc}", file=str(path)) from exc
    if path.suffix.lower() == ".json":
        return segment_format.loads(text, file=str(path), name=path.stem)
    return yaml_format.loads(text, file=str(path))


def parse_source(
    item: dict[str, Any], where: str, error: ErrorAt, config_file: str
) -> tuple[TrackingPlan | None, Enforcement]:
    """The plan and enforcement of the source mapping ``item`` found at ``where``."""
    plan: TrackingPlan | None = None
    ref = item.get("tracking_plan")
    if ref is not None:
        if not isinstance(ref, str) or not ref:
            raise error(
                f"{where}.tracking_plan",
                "tracking_plan is a path to a plan file — e.g. `tracking_plan: plans/web.yaml`",
            )
        path = Path(ref)
        if not path.is_absolute():
            path = Path(config_file).parent / path
        if not path.exists():
            raise error(
                f"{where}.tracking_plan",
                f"tracking plan file {ref} does not exist (looked for {path}) — "
                "create it or fix the path",
            )
        try:
            plan = load_plan(path)
        except PlanError as exc:
            raise ConfigError(exc.problem, file=exc.file, line=exc.line) from exc
    raw = item.get("enforcement")
    if raw is None:
        return plan, Enforcement()
    if plan is None:
        raise error(f"{where}.enforcement", "enforcement needs a tracking_plan on the same source")
    if not isinstance(raw, dict):
        raise error(f"{where}.enforcement", "enforcement must be a mapping (track, identify, ...)")
    allowed = ("track", "identify", "group", *_FORWARD)
    controls: dict[str, Controls] = {}
    forwards: dict[str, str] = {}
    for key, value in raw.items():
        path_key = f"{where}.enforcement.{key}"
        if key in _FORWARD:
            if not isinstance(value, str) or not value:
                raise error(path_key, f"{key} is a source id, e.g. `{key}: audit`")
            forwards[_FORWARD[key]] = value
        elif key in ("track", "identify", "group"):
            controls[key] = _controls(value, path_key, _TRACK if key == "track" else _TRAITS, error)
        else:
            raise error(path_key, f"unknown key {key!r} — allowed: {', '.join(allowed)}")
    return plan, Enforcement(**controls, **forwards)  # type: ignore[arg-type]


def _controls(
    value: Any, where: str, table: dict[str, tuple[str, tuple[str, ...]]], error: ErrorAt
) -> Controls:
    if value is None:
        return Controls()
    if not isinstance(value, dict):
        raise error(where, f"must be a mapping of {', '.join(table)}")
    chosen: dict[str, str] = {}
    for key, setting in value.items():
        if key not in table:
            raise error(f"{where}.{key}", f"unknown key {key!r} — allowed: {', '.join(table)}")
        name, options = table[key]
        if setting not in options:
            raise error(
                f"{where}.{key}",
                f"{key} is {setting!r} — use one of: {', '.join(options)}",
            )
        chosen[name] = setting
    return Controls(**chosen)  # type: ignore[arg-type]


def check_forwarding(
    enforcement: Enforcement, where: str, sources: tuple[str, ...], error: ErrorAt
) -> None:
    """Forwarding targets must be other sources of the workspace."""
    for key, target in (
        ("forward_blocked_events_to", enforcement.forward_blocked_to),
        ("forward_violations_to", enforcement.forward_violations_to),
    ):
        if target is not None and target not in sources:
            raise error(
                f"{where}.enforcement.{key}",
                f"{key} names source {target!r}, which is not in sources — "
                f"use one of: {', '.join(sources)}",
            )
