"""mainstem.yaml: schema, ${ENV} interpolation, settings precedence, errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mainstem import config, settings
from mainstem.errors import ConfigError

GOOD = """\
admin_token: ${TOKEN:-fallback-token}
sources:
  - id: web
    name: Website
    write_key: ${WEB_KEY}
  - id: ios
    write_key: ios-write-key-1
    enabled: false
destinations: []
settings:
  port: 9000
  dedupe_window: 12h
  trusted_proxies: [10.0.0.0/8]
"""


def test_loads_a_workspace_with_env_interpolation() -> None:
    workspace = config.parse(GOOD, env={"WEB_KEY": "from-the-env-123"}, file="w.yaml")
    assert workspace.admin_token.reveal() == "fallback-token"
    web, ios = workspace.sources
    assert (web.id, web.name, web.write_key.reveal(), web.enabled) == (
        "web",
        "Website",
        "from-the-env-123",
        True,
    )
    assert (ios.name, ios.enabled) == ("ios", False)
    assert workspace.settings.port == 9000
    assert workspace.settings.dedupe_window == 12 * 3600
    assert workspace.settings.trusted_proxies == ("10.0.0.0/8",)
    assert workspace.source_for_key("ios-write-key-1") is ios
    assert workspace.source_for_key("nope") is None


def test_secrets_never_print() -> None:
    workspace = config.parse(GOOD, env={"WEB_KEY": "from-the-env-123"})
    assert "from-the-env-123" not in repr(workspace)
    assert str(workspace.sources[0].write_key) == "********"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "mainstem.yaml: the file is empty — start from `mainstem init`"),
        (
            "admin_token: [unclosed\n",
            "mainstem.yaml:2: not valid YAML: expected ',' or ']', but "
            "got '<stream end>' — check indentation and quoting",
        ),
        ("- a\n", "mainstem.yaml:1: the top level must be a mapping with admin_token and sources"),
        (
            "admin_token: short\nsources: []\n",
            "mainstem.yaml:1: admin_token must be a string of "
            "at least 8 characters — add `admin_token: ${MAINSTEM_ADMIN_TOKEN}` or run "
            "`mainstem init`",
        ),
        (
            "admin_token: long-enough\nsources: []\n",
            "mainstem.yaml:2: sources must be a "
            "non-empty list — add `sources: [{id: web, name: Website, write_key: ...}]`",
        ),
        (
            "admin_token: long-enough\nsorces: []\n",
            "mainstem.yaml:2: unknown key 'sorces' — allowed: admin_token, sources, destinations, "
            "identity, lint, settings",
        ),
        (
            "admin_token: long-enough\nsources:\n  - id: Web Site\n    write_key: abcdefgh\n",
            "mainstem.yaml:3: source id must be lowercase letters, digits, - or _ (e.g. `id: web`)",
        ),
        (
            "admin_token: long-enough\nsources:\n  - id: web\n    write_key: abc\n",
            "mainstem.yaml:4: write_key must be a string of at least 8 characters without ':' — "
            "generate one with `mainstem init`",
        ),
        (
            "admin_token: long-enough\nsources:\n  - id: web\n    write_key: abcdefgh\n"
            "  - id: web\n    write_key: abcdefgi\n",
            "mainstem.yaml:5: source id 'web' is used twice (also at sources[0]) — ids must be "
            "unique",
        ),
        (
            "admin_token: long-enough\nsources:\n  - id: web\n    write_key: abcdefgh\n"
            "  - id: app\n    write_key: abcdefgh\n",
            "mainstem.yaml:6: write_key is also used by source 'web' — each source needs its own "
            "key",
        ),
        (
            "admin_token: long-enough\nsources:\n  - id: web\n    write_key: abcdefgh\n"
            "    enabled: maybe\n",
            "mainstem.yaml:5: enabled must be true or false",
        ),
        (
            "admin_token: long-enough\nsources:\n  - id: web\n    write_key: abcdefgh\n"
            "    wrte_key: x\n",
            "mainstem.yaml:5: unknown key 'wrte_key' in a source — allowed: "
            "id, name, write_key, enabled, tracking_plan, enforcement, function",
        ),
        (
            "admin_token: ${NOPE}\n",
            "mainstem.yaml:1: admin_token refers to ${NOPE} but the "
            "environment variable NOPE is not set — export it or write ${NOPE:-default}",
        ),
        (
            "admin_token: long-enough\nsources:\n  - id: web\n    write_key: abcdefgh\n"
            "settings:\n  port: eighty\n",
            "mainstem.yaml:6: settings.port: expected a whole number, got 'eighty'",
        ),
        (
            "admin_token: long-enough\nsources:\n  - id: web\n    write_key: abcdefgh\n"
            "settings:\n  prot: 80\n",
            "mainstem.yaml:6: unknown setting 'prot' — known settings: "
            + ", ".join(sorted(settings.BY_NAME)),
        ),
        (
            "admin_token: long-enough\nsources:\n  - id: web\n    write_key: abcdefgh\n"
            "destinations:\n  - id: hook\n",
            "mainstem.yaml:6: destination 'hook' needs a type — one of: webhook, segment, "
            "slack, function, mixpanel, amplitude, ga4, hubspot (e.g. `type: webhook`)",
        ),
        (
            "admin_token: long-enough\nadmin_token: again-long\n",
            "mainstem.yaml:2: duplicate key 'admin_token' — keep only one",
        ),
    ],
)
def test_errors_name_the_line_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(text, env={})
    assert str(caught.value) == message


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as caught:
        config.load("/nonexistent/mainstem.yaml")
    assert str(caught.value) == (
        "/nonexistent/mainstem.yaml: no such file — create one with `mainstem init`"
    )


def test_precedence_flag_over_env_over_file() -> None:
    text = (
        "admin_token: long-enough\nsources:\n  - id: web\n    write_key: abcdefgh\n"
        "settings:\n  port: 9000\n  host: 0.0.0.0\n  fsync: true\n"
    )
    workspace = config.parse(
        text,
        env={"MAINSTEM_PORT": "9100", "MAINSTEM_FSYNC": "off"},
        flags={"port": "9200", "host": None},
    )
    assert workspace.settings.port == 9200
    assert workspace.settings.host == "0.0.0.0"
    assert workspace.settings.fsync is False


def test_bad_env_setting_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        settings.resolve({}, {"MAINSTEM_DEDUPE_WINDOW": "a while"})
    assert str(caught.value) == (
        "MAINSTEM_DEDUPE_WINDOW: expected a duration like 30s, 15m, 24h or 7d, got 'a while'"
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("90", 90.0), ("15m", 900.0), ("24h", 86400.0), ("7d", 604800.0), ("250ms", 0.25), (30, 30.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert settings.parse_duration(value) == seconds


def test_starter_workspace_is_valid_and_random(tmp_path: Path) -> None:
    first = config.parse(config.starter(), env={})
    second = config.parse(config.starter(), env={})
    assert first.sources[0].write_key != second.sources[0].write_key
    assert first.admin_token != second.admin_token
    assert first.settings.port == 8088


def test_demo_workspace_is_valid() -> None:
    workspace = config.load(Path(__file__).parent.parent / "examples" / "demo.yaml", env={})
    assert [s.id for s in workspace.sources] == ["web", "backend"]


@pytest.mark.parametrize(
    ("settings_text", "message"),
    [
        (
            "  log_level: verbose\n",
            "mainstem.yaml:6: log_level must be one of debug, info, "
            "warning, error, critical, got 'verbose'",
        ),
        (
            "  trusted_proxies: [not-an-ip]\n",
            "mainstem.yaml:6: trusted_proxies: 'not-an-ip' is "
            "not an IP address or network (CIDR) — write e.g. 10.0.0.5 or 10.0.0.0/8",
        ),
    ],
)
def test_settings_are_validated_before_serving(settings_text: str, message: str) -> None:
    text = (
        "admin_token: long-enough\nsources:\n  - id: web\n    write_key: abcdefgh\n"
        "settings:\n" + settings_text
    )
    with pytest.raises(ConfigError) as caught:
        config.parse(text, env={})
    assert str(caught.value) == message


def test_shell_like_defaults_and_booleans_from_the_environment() -> None:
    text = (
        "admin_token: ${TOKEN:-fallback-token}\nsources:\n  - id: web\n"
        "    write_key: abcdefgh\n    enabled: ${WEB_ENABLED:-true}\n"
    )
    workspace = config.parse(text, env={"TOKEN": "", "WEB_ENABLED": "false"})
    assert workspace.admin_token.reveal() == "fallback-token"
    assert workspace.sources[0].enabled is False


def test_block_values_are_reported_at_their_key() -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse("admin_token: long-enough\nsource:\n  - id: web\n", env={})
    assert str(caught.value).startswith("mainstem.yaml:2: unknown key 'source'")
