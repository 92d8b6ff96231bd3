"""The destinations part of mainstem.yaml: parsed values and errors with file:line and the fix."""

from __future__ import annotations

import pytest

from mainstem import config
from mainstem.destinations import fql
from mainstem.destinations.spec import Action, Endpoint
from mainstem.errors import ConfigError

HEAD = """\
admin_token: long-enough
sources:
  - id: web
    write_key: abcdefgh
  - id: ios
    write_key: ijklmnop
destinations:
"""

FULL = (
    HEAD
    + """\
  - id: hooks
    type: webhook
    sources: [web]
    consent_categories: [Analytics, Advertising]
    types: [track, identify]
    filters:
      - if: "type = 'track' and event = 'Debug'"
        actions: [{type: drop}]
      - if: all
        actions:
          - {type: sample, percent: 0.5, path: userId}
          - {type: drop_properties, fields: {properties: [email], "": [userId]}}
    settings:
      url: http://127.0.0.1:9/hook
      secret: ${HOOK_SECRET}
      headers: {X-Team: growth}
      timeout: 2s
    batch: {size: 50, interval: 2s}
    rate_limit: 20/s
    retry_window: 30m
  - id: chain
    type: segment
    enabled: ${CHAIN_ON:-false}
    settings: {url: "http://127.0.0.1:9", write_key: "${CHAIN_KEY}"}
"""
)


def test_parses_every_field_with_secrets_from_the_env() -> None:
    workspace = config.parse(FULL, env={"HOOK_SECRET": "s3cret", "CHAIN_KEY": "chain-key-1"})
    hooks, chain = workspace.destinations
    assert (hooks.id, hooks.type, hooks.name, hooks.enabled) == (
        "hooks",
        "webhook",
        "Webhooks",
        True,
    )
    assert hooks.sources == ("web",)
    assert hooks.consent_categories == ("Analytics", "Advertising")
    assert hooks.types == ("track", "identify")
    assert hooks.endpoint.url == "http://127.0.0.1:9/hook"
    assert hooks.endpoint.secret is not None and hooks.endpoint.secret.reveal() == "s3cret"
    assert hooks.endpoint.headers == (("X-Team", "growth"),)
    assert hooks.endpoint.timeout == 2.0
    assert (hooks.batch_size, hooks.batch_interval, hooks.rate_limit, hooks.retry_window) == (
        50,
        2.0,
        20.0,
        1800.0,
    )
    drop, rest = hooks.filters
    assert drop.condition == "type = 'track' and event = 'Debug'"
    assert drop.actions == (Action("drop"),)
    assert fql.matches(drop.expr, {"type": "track", "event": "Debug"})
    assert rest.actions == (
        Action("sample", percent=0.5, path="userId"),
        Action("drop_properties", fields={"properties": ("email",), "": ("userId",)}),
    )
    assert (chain.type, chain.name, chain.enabled, chain.sources) == (
        "segment",
        "Segment",
        False,
        None,
    )
    assert chain.endpoint == Endpoint("http://127.0.0.1:9", chain.endpoint.secret)
    assert chain.batch_size == 100
    assert chain.retry_window == 4 * 3600.0
    assert "s3cret" not in repr(workspace) and "chain-key-1" not in repr(workspace)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "  - id: hooks\n",
            "mainstem.yaml:8: destination 'hooks' needs a type — one of: webhook, segment, "
            "slack, function, mixpanel, amplitude, ga4, hubspot (e.g. `type: webhook`)",
        ),
        (
            "  - id: Hooks\n",
            "mainstem.yaml:8: destination id must be lowercase letters, digits, - or _ "
            "(e.g. `id: hooks`)",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings:\n      secret: x\n",
            "mainstem.yaml:10: destination 'hooks' has no url — add `url: https://...` under "
            "settings",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: ftp://x}\n",
            "mainstem.yaml:10: url must start with http:// or https://, got 'ftp://x'",
        ),
        (
            "  - id: fwd\n    type: segment\n    settings: {url: 'http://x'}\n",
            "mainstem.yaml:10: destination 'fwd' has no write_key — add "
            "`write_key: ${FWD_WRITE_KEY}` under settings",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
            "    sources: [android]\n",
            "mainstem.yaml:11: destination 'hooks' names source 'android', which is not in "
            "sources — use one of: web, ios",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
            "    types: [track, purchase]\n",
            "mainstem.yaml:11: unknown message type 'purchase' — use: track, identify, page, "
            "screen, group, alias",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
            '    filters:\n      - if: "event = "\n        actions: [{type: drop}]\n',
            "mainstem.yaml:12: cannot parse the condition 'event = ': the condition ends early",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
            '    filters:\n      - if: "shout(event)"\n        actions: [{type: drop}]\n',
            "mainstem.yaml:12: cannot parse the condition 'shout(event)': unknown function "
            "'shout' at column 1 — known: contains, kebabcase, length, lowercase, match, "
            "snakecase, titlecase, typeof, uppercase",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
            "    filters:\n      - if: all\n        actions: [{type: sample, percent: 2}]\n",
            "mainstem.yaml:13: a sample action needs `percent:` between 0 and 1 (0.1 keeps 10%)",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
            "    rate_limit: fast\n",
            "mainstem.yaml:11: rate_limit must be events per second like `50/s`, got 'fast'",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
            "    retry_window: forever\n",
            "mainstem.yaml:11: retry_window: expected a duration like 30s, 15m, 24h or 7d, "
            "got 'forever'",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
            "    batch: {size: 5000}\n",
            "mainstem.yaml:11: batch size must be between 1 and 4000 for webhook destinations",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n    colour: red\n",
            "mainstem.yaml:11: unknown key 'colour' in a destination — allowed: id, type, name, "
            "enabled, sources, consent_categories, types, filters, settings, batch, "
            "rate_limit, concurrency, retry_window, function",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
            "    concurrency: 99\n",
            "mainstem.yaml:11: concurrency must be between 1 and 16 requests in flight",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://y'}\n",
            "mainstem.yaml:11: destination id 'hooks' is used twice (also at destinations[0]) "
            "— ids must be unique",
        ),
        (
            "  - id: hooks\n    type: webhook\n    settings: {url: 'http://x', token: y}\n",
            "mainstem.yaml:10: unknown setting 'token' for a Webhooks destination — allowed: "
            "headers, secret, timeout, url",
        ),
    ],
)
def test_errors_name_the_line_and_the_fix(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(HEAD + entry)
    assert str(caught.value) == message


def test_an_empty_list_and_null_mean_no_destinations() -> None:
    assert config.parse(HEAD.replace("destinations:", "destinations: []")).destinations == ()
    assert config.parse(HEAD).destinations == ()


def test_slack_takes_a_template_checked_at_load_time() -> None:
    text = HEAD + (
        "  - id: chat\n    type: slack\n    settings:\n      url: http://127.0.0.1:9/x\n"
        "      template: '{{userId}} did {{event}}'\n"
    )
    (chat,) = config.parse(text).destinations
    assert (chat.name, chat.batch_size, chat.endpoint.template) == (
        "Slack",
        1,
        "{{userId}} did {{event}}",
    )
    default = HEAD + "  - id: chat\n    type: slack\n    settings: {url: 'http://x'}\n"
    assert (
        config.parse(default).destinations[0].endpoint.template
        == "{{type}} {{event}} by {{userId}}"
    )
    bad = HEAD + (
        "  - id: chat\n    type: slack\n    settings:\n      url: http://x\n"
        "      template: 'hi {{lowercase(event)}}'\n"
    )
    with pytest.raises(ConfigError) as caught:
        config.parse(bad)
    assert str(caught.value) == (
        "mainstem.yaml:12: cannot use the template: {{lowercase(event)}} is not a field path "
        "like {{userId}}"
    )


INTEGRATIONS = (
    HEAD
    + """\
  - id: mp
    type: mixpanel
    settings: {token: "${MP_TOKEN}", endpoint: "https://api-eu.mixpanel.com/"}
  - id: amp
    type: amplitude
    settings: {api_key: "${AMP_KEY}", min_id_length: 3, revenue_per_product: "true"}
  - id: ga
    type: ga4
    settings: {measurement_id: G-ABC, api_secret: "${GA_SECRET}"}
  - id: crm
    type: hubspot
    settings:
      access_token: ${HUBSPOT_TOKEN}
      events: {Order Completed: pe1_order_completed}
"""
)


def test_integrations_take_their_declared_settings_with_secrets_from_the_env() -> None:
    env = {"MP_TOKEN": "mp-t", "AMP_KEY": "amp-k", "GA_SECRET": "ga-s", "HUBSPOT_TOKEN": "hs-t"}
    workspace = config.parse(INTEGRATIONS, env=env)
    mp, amp, ga, crm = workspace.destinations
    assert (mp.name, mp.endpoint.url, mp.batch_size) == (
        "Mixpanel",
        "https://api-eu.mixpanel.com",
        50,
    )
    assert mp.endpoint.options["token"].reveal() == "mp-t"
    assert mp.endpoint.options["group_key"] == "company_id"
    assert (amp.name, amp.endpoint.url, amp.types) == (
        "Amplitude",
        "https://api2.amplitude.com",
        ("track", "identify", "page", "screen", "group"),
    )
    assert (amp.endpoint.options["min_id_length"], amp.endpoint.options["revenue_per_product"]) == (
        3,
        True,
    )
    assert (ga.name, ga.endpoint.url, ga.types) == (
        "Google Analytics 4",
        "https://www.google-analytics.com",
        ("track", "page", "screen", "group"),
    )
    assert crm.endpoint.options["events"] == {"Order Completed": "pe1_order_completed"}
    assert not any(secret in repr(workspace) for secret in env.values())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "  - id: mp\n    type: mixpanel\n",
            "mainstem.yaml:8: destination 'mp' has no token — add `token: ${MP_TOKEN}` under "
            "settings",
        ),
        (
            "  - id: mp\n    type: mixpanel\n    settings: {token: t, url: 'http://x'}\n",
            "mainstem.yaml:10: unknown setting 'url' for a Mixpanel destination — allowed: "
            "endpoint, timeout, token, username, secret, project_id, group_key",
        ),
        (
            "  - id: mp\n    type: mixpanel\n    settings: {token: t, username: sa}\n",
            "mainstem.yaml:10: username needs secret and project_id — add them under settings",
        ),
        (
            "  - id: ga\n    type: ga4\n    types: [track, identify]\n"
            "    settings: {measurement_id: G-1, api_secret: s}\n",
            "mainstem.yaml:10: Google Analytics 4 takes no identify calls — use: track, page, "
            "screen, group",
        ),
        (
            "  - id: amp\n    type: amplitude\n    settings: {api_key: k, endpoint: 'ftp://x'}\n",
            "mainstem.yaml:10: endpoint must be a base URL like https://api2.amplitude.com",
        ),
        (
            "  - id: crm\n    type: hubspot\n    settings: {access_token: t, events: [a]}\n",
            "mainstem.yaml:10: events must be a mapping of name: string",
        ),
        (
            "  - id: crm\n    type: hubspot\n    batch: {size: 500}\n"
            "    settings: {access_token: t}\n",
            "mainstem.yaml:10: batch size must be between 1 and 100 for hubspot destinations",
        ),
    ],
)
def test_integration_errors_name_the_line_and_the_fix(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(HEAD + entry)
    assert str(caught.value) == message
