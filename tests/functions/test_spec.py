"""The ``function:`` block in mainstem.yaml: defaults, limits, and errors with their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mainstem import config
from mainstem.errors import ConfigError
from mainstem.functions.runner import Limits
from tests.functions.conftest import HEAD, MISBEHAVING, write

SOURCE = HEAD.replace("sources:\n", "sources:\n  - id: hooks\n    write_key: hooks-key-1\n")


def load(directory: Path, text: str) -> config.Workspace:
    return config.parse(text, file=str(directory / "mainstem.yaml"), env={"CRM_KEY": "k-123"})


def test_a_destination_function_with_defaults_and_settings(tmp_path: Path) -> None:
    write(tmp_path, "crm.py", MISBEHAVING)
    workspace = load(
        tmp_path,
        HEAD + "destinations:\n  - id: crm\n    type: function\n    function:\n"
        "      file: crm.py\n      settings: {api_key: '${CRM_KEY}'}\n",
    )
    (destination,) = workspace.destinations
    spec = destination.function
    assert spec is not None
    assert spec.file == tmp_path / "crm.py"
    assert spec.limits == Limits(timeout=5.0, memory=256 * 1024 * 1024, concurrency=2)
    assert spec.settings == {"api_key": "k-123"}
    assert "k-123" not in repr(destination)
    assert spec.handlers == ("on_track", "on_identify", "on_page")
    assert destination.name == "Function"
    assert destination.endpoint.url == (tmp_path / "crm.py").as_uri()


def test_a_source_function_with_limits(tmp_path: Path) -> None:
    write(tmp_path, "hook.py", "def on_request(request, settings):\n    pass\n")
    text = SOURCE.replace(
        "write_key: hooks-key-1\n",
        "write_key: hooks-key-1\n    function: {file: hook.py, timeout: 30s, memory: 1GB, "
        "concurrency: 4}\n",
    )
    hooks = load(tmp_path, text).sources[0]
    assert hooks.function is not None
    assert hooks.function.limits == Limits(timeout=30.0, memory=1 << 30, concurrency=4)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "    function: {file: nope.py}\n",
            "{dir}/mainstem.yaml:8: no such file: {dir}/nope.py",
        ),
        (
            "    function: {file: broken.py}\n",
            "{dir}/mainstem.yaml:8: {dir}/broken.py:2: '(' was never closed — fix the "
            "function's code",
        ),
        (
            "    function: {file: hook.py}\n",
            "{dir}/mainstem.yaml:8: {dir}/hook.py defines none of on_track, on_identify, on_page, "
            "on_screen, on_group, on_alias, on_delete, on_batch — a destination function needs "
            "at least one, e.g. `def on_track(event, settings):`",
        ),
        (
            "    function: {file: crm.py, memory: 10MB}\n",
            "{dir}/mainstem.yaml:8: memory: at least 64MB is needed to start Python, got '10MB'",
        ),
        (
            "    function: {file: crm.py, timeout: 0s}\n",
            "{dir}/mainstem.yaml:8: timeout must be more than 0 (e.g. `timeout: 5s`)",
        ),
        (
            "    function: {file: crm.py, concurrency: 0}\n",
            "{dir}/mainstem.yaml:8: concurrency must be between 1 and 32",
        ),
        (
            "    function: {file: crm.py, colour: red}\n",
            "{dir}/mainstem.yaml:8: unknown key 'colour' in function — allowed: file, timeout, "
            "memory, concurrency, settings",
        ),
        (
            "    function: {file: crm.py}\n    settings: {url: 'http://x'}\n",
            "{dir}/mainstem.yaml:9: a function destination takes its settings under "
            "`function: {{settings: {{...}}}}`",
        ),
        (
            "    types: [track]\n",
            "{dir}/mainstem.yaml:6: destination 'crm' needs `function: {{file: functions/x.py}}`",
        ),
    ],
)
def test_destination_errors_name_the_line_and_the_fix(
    tmp_path: Path, entry: str, message: str
) -> None:
    write(tmp_path, "crm.py", MISBEHAVING)
    write(tmp_path, "hook.py", "def on_request(request, settings):\n    pass\n")
    write(tmp_path, "broken.py", "def on_track(event, settings):\n    return (\n")
    text = HEAD + "destinations:\n  - id: crm\n    type: function\n" + entry
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert str(caught.value) == message.format(dir=tmp_path)


def test_a_source_function_needs_on_request(tmp_path: Path) -> None:
    write(tmp_path, "crm.py", MISBEHAVING)
    text = SOURCE.replace(
        "write_key: hooks-key-1\n", "write_key: hooks-key-1\n    function: {file: crm.py}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert str(caught.value) == (
        f"{tmp_path}/mainstem.yaml:5: {tmp_path}/crm.py defines none of on_request — a source "
        "function needs `def on_request(request, settings):`"
    )


def test_function_is_only_for_function_destinations(tmp_path: Path) -> None:
    text = HEAD + (
        "destinations:\n  - id: hooks\n    type: webhook\n    settings: {url: 'http://x'}\n"
        "    function: {file: crm.py}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert (
        str(caught.value) == f"{tmp_path}/mainstem.yaml:9: function: is only for `type: function`"
    )
