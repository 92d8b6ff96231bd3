"""The workspace, as code: ``mainstem.yaml``.

Loading keeps the line of every value so that each error names ``file:line``, what is wrong and
how to fix it. ``${NAME}`` and ``${NAME:-default}`` in any string are replaced from the
environment. The schema is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mainstem import settings as settings_mod
from mainstem.destinations import spec as destination_spec
from mainstem.errors import ConfigError
from mainstem.functions import spec as function_spec
from mainstem.identity import spec as identity_spec
from mainstem.plans import attachment
from mainstem.plans.enforcement import Enforcement
from mainstem.plans.lint import settings as lint_settings
from mainstem.plans.model import TrackingPlan
from mainstem.secret import Secret

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TOP_LEVEL = ("admin_token", "sources", "destinations", "identity", "lint", "settings")


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    write_key: Secret
    enabled: bool = True
    tracking_plan: TrackingPlan | None = None
    enforcement: Enforcement = field(default_factory=Enforcement)
    function: function_spec.FunctionSpec | None = None
    """A source function: ``POST /functions/{id}`` runs it (docs/functions.md)."""


@dataclass(frozen=True)
class Workspace:
    admin_token: Secret
    sources: tuple[Source, ...]
    settings: settings_mod.Settings
    path: str | None = None
    destinations: tuple[destination_spec.Destination, ...] = ()
    identity: identity_spec.IdentitySpec = field(default_factory=identity_spec.IdentitySpec)
    lint: lint_settings.LintSettings = field(default_factory=lint_settings.LintSettings)
    flags: Mapping[str, object] = field(default_factory=dict)
    """Command-line overrides it was loaded with; a reload applies them again."""

    def source_for_key(self, write_key: str) -> Source | None:
        for source in self.sources:
            if source.write_key.matches(write_key):
                return source
        return None


class _Located:
    """A YAML document flattened to plain values plus the line of every path."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.lines: dict[str, int] = {}

    def build(self, node: yaml.Node, path: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                if key in result:
                    raise ConfigError(
                        f"duplicate key {key!r} — keep only one",
                        file=self.file,
                        line=key_node.start_mark.line + 1,
                    )
                result[key] = self.build(value_node, child)
                # errors about an entry point at its key, also when the value is a block
                self.lines[child] = key_node.start_mark.line + 1
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        if node.tag == "tag:yaml.org,2002:null":  # `key:` with no value; serialize() fails on it
            return None
        value = yaml.safe_load(yaml.serialize(node))
        if isinstance(value, str):
            value = self._interpolate(value, path)
        return value

    def _interpolate(self, text: str, path: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = self.env.get(name)
            if value:
                return value
            if default is not None:  # as in the shell, ${NAME:-default} also covers NAME=""
                return default
            if value is not None:
                return value
            raise ConfigError(
                f"{path} refers to ${{{name}}} but the environment variable {name} is not set — "
                f"export it or write ${{{name}:-default}}",
                file=self.file,
                line=self.lines.get(path),
            )

        return _ENV_REF.sub(replace, text)

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.lines.get(path))


def load(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Workspace:
    """Read and validate a workspace file.

    Raises:
        ConfigError: the file is missing, not YAML, or does not match the schema.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file — create one with `mainstem init`", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", file=file) from exc
    return parse(text, file=file, env=env, flags=flags)


def load_lint(path: str | Path, env: Mapping[str, str] | None = None) -> lint_settings.LintSettings:
    """Only the ``lint:`` section of a workspace file (or of a file that has nothing else), so
    that ``mainstem lint`` runs in CI without the workspace's secrets in the environment.

    Raises:
        ConfigError: the file is missing, not YAML, or its lint section is wrong.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except FileNotFoundError:
        raise ConfigError("no such file", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", file=file) from exc
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(
            f"not valid YAML: {exc.problem} — check indentation and quoting", file=file, line=line
        ) from exc
    located = _Located(file, env if env is not None else os.environ)
    if not isinstance(node, yaml.MappingNode):
        return lint_settings.LintSettings()
    for key_node, value_node in node.value:
        if key_node.value == "lint":
            located.lines["lint"] = key_node.start_mark.line + 1
            raw = located.build(value_node, "lint")
            located.lines["lint"] = key_node.start_mark.line + 1
            return lint_settings.parse(raw, located.error)
    return lint_settings.LintSettings()


def parse(
    text: str,
    *,
    file: str = "mainstem.yaml",
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Workspace:
    env = env if env is not None else os.environ
    located = _Located(file, env)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(
            f"not valid YAML: {exc.problem} — check indentation and quoting", file=file, line=line
        ) from exc
    if node is None:
        raise ConfigError("the file is empty — start from `mainstem init`", file=file)
    doc = located.build(node, "")
    if not isinstance(doc, dict):
        raise located.error("", "the top level must be a mapping with admin_token and sources")
    for key in doc:
        if key not in _TOP_LEVEL:
            raise located.error(key, f"unknown key {key!r} — allowed: {', '.join(_TOP_LEVEL)}")

    token = doc.get("admin_token")
    if not isinstance(token, str) or len(token) < 8:
        raise located.error(
            "admin_token" if "admin_token" in doc else "",
            "admin_token must be a string of at least 8 characters — add "
            "`admin_token: ${MAINSTEM_ADMIN_TOKEN}` or run `mainstem init`",
        )

    sources = _sources(doc.get("sources"), located)
    destinations = destination_spec.parse(
        doc.get("destinations"),
        located.error,
        tuple(source.id for source in sources),
        Path(file).parent,
    )

    raw_settings = doc.get("settings") or {}
    if not isinstance(raw_settings, dict):
        raise located.error("settings", "settings must be a mapping of name: value")
    setting_lines = {name: located.lines.get(f"settings.{name}", 0) for name in raw_settings}
    resolved = settings_mod.resolve(raw_settings, env, flags, file=file, lines=setting_lines)
    return Workspace(
        admin_token=Secret(token),
        sources=sources,
        settings=resolved,
        path=file,
        destinations=destinations,
        identity=identity_spec.parse(doc.get("identity"), located.error),
        lint=lint_settings.parse(doc.get("lint"), located.error),
        flags={k: v for k, v in (flags or {}).items() if v is not None},
    )


def _sources(raw: object, located: _Located) -> tuple[Source, ...]:
    if not isinstance(raw, list) or not raw:
        raise located.error(
            "sources" if raw is not None else "",
            "sources must be a non-empty list — add "
            "`sources: [{id: web, name: Website, write_key: ...}]`",
        )
    result: list[Source] = []
    seen_ids: dict[str, str] = {}
    seen_keys: dict[str, str] = {}
    for index, item in enumerate(raw):
        where = f"sources[{index}]"
        if not isinstance(item, dict):
            raise located.error(where, "each source must be a mapping with id, name and write_key")
        for key in item:
            if key not in {
                "id",
                "name",
                "write_key",
                "enabled",
                "function",
                *attachment.SOURCE_KEYS,
            }:
                raise located.error(
                    f"{where}.{key}",
                    f"unknown key {key!r} in a source — allowed: id, name, write_key, enabled, "
                    "tracking_plan, enforcement, function",
                )
        source_id = item.get("id")
        if not isinstance(source_id, str) or not _SOURCE_ID.match(source_id):
            raise located.error(
                f"{where}.id" if "id" in item else where,
                "source id must be lowercase letters, digits, - or _ (e.g. `id: web`)",
            )
        if source_id in seen_ids:
            raise located.error(
                f"{where}.id",
                f"source id {source_id!r} is used twice "
                f"(also at {seen_ids[source_id]}) — ids must be unique",
            )
        key = item.get("write_key")
        if not isinstance(key, str) or len(key) < 8 or ":" in key:
            raise located.error(
                f"{where}.write_key" if "write_key" in item else where,
                "write_key must be a string of at least 8 characters without "
                "':' — generate one with `mainstem init`",
            )
        if key in seen_keys:
            raise located.error(
                f"{where}.write_key",
                f"write_key is also used by source "
                f"{seen_keys[key]!r} — each source needs its own key",
            )
        name = item.get("name", source_id)
        if not isinstance(name, str):
            raise located.error(f"{where}.name", "name must be a string")
        enabled = item.get("enabled", True)
        if isinstance(enabled, str):  # e.g. `enabled: ${WEB_ENABLED:-true}`
            with contextlib.suppress(ValueError):
                enabled = settings_mod.parse_bool(enabled)
        if not isinstance(enabled, bool):
            raise located.error(f"{where}.enabled", "enabled must be true or false")
        seen_ids[source_id] = where
        seen_keys[key] = source_id
        plan, enforcement = attachment.parse_source(item, where, located.error, located.file)
        function = None
        if "function" in item:
            function = function_spec.parse(
                item["function"],
                f"{where}.function",
                located.error,
                Path(located.file).parent,
                "source",
            )
        result.append(
            Source(
                id=source_id,
                name=name,
                write_key=Secret(key),
                enabled=enabled,
                tracking_plan=plan,
                enforcement=enforcement,
                function=function,
            )
        )
    for where, source in zip(seen_ids.values(), result, strict=True):
        attachment.check_forwarding(source.enforcement, where, tuple(seen_ids), located.error)
    return tuple(result)


STARTER = """\
# Mainstem workspace. Reference: docs/configuration.md
# Secrets may come from the environment: admin_token: ${{MAINSTEM_ADMIN_TOKEN}}
admin_token: {admin_token}

sources:
  - id: {source_id}
    name: {source_name}
    write_key: {write_key}
    enabled: true

destinations: []

settings:
  port: 8088
  data_dir: {data_dir}
"""


def starter(
    source_id: str = "web", source_name: str = "Website", data_dir: str = ".mainstem"
) -> str:
    """A starter workspace with a fresh random write key and admin token."""
    return STARTER.format(
        admin_token=secrets.token_urlsafe(24),
        source_id=source_id,
        source_name=source_name,
        write_key=secrets.token_urlsafe(18),
        data_dir=data_dir,
    )
