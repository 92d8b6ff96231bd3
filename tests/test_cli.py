"""The ``mainstem`` command, through Typer's runner and, for --follow, as a real process."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from mainstem.cli import app
from tests.conftest import WRITE_KEY, InProcess, ServerProcess

runner = CliRunner()
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}


def send(inproc: InProcess, *events: dict[str, object]) -> None:
    response = inproc.client.post("/v1/batch", json={"batch": list(events)}, headers=AUTH)
    assert response.status_code == 200
    inproc.process()


def test_init_writes_a_valid_workspace(tmp_path: Path) -> None:
    path = tmp_path / "mainstem.yaml"
    result = runner.invoke(app, ["init", str(path), "--source", "shop"])
    assert result.exit_code == 0, result.output
    assert "Write key (shop):" in result.output
    check = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert check.exit_code == 0, check.output
    assert "shop" in check.output and "OK" in check.output
    again = runner.invoke(app, ["init", str(path)])
    assert again.exit_code == 1
    assert "already exists — pass --force to overwrite it" in again.output


def test_config_check_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("admin_token: long-enough\nsources:\n  - id: web\n    write_key: x\n")
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 1
    assert f"{path}:4: write_key must be a string of at least 8 characters" in result.output


def test_events_json_and_filters(inproc: InProcess, workspace_file: Path) -> None:
    send(
        inproc,
        {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "m1"},
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m2"},
        {"type": "track", "anonymousId": "a9", "event": "Viewed", "messageId": "m3"},
    )
    result = runner.invoke(app, ["events", "--config", str(workspace_file), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["message"]["messageId"] for line in lines] == ["m1", "m2", "m3"]
    assert lines[0]["source_id"] == "web"
    assert lines[1]["message"]["traits"] == {"plan": "pro"}
    typed = runner.invoke(
        app, ["events", "-c", str(workspace_file), "--json", "--type", "track", "--limit", "1"]
    )
    assert [json.loads(x)["message"]["messageId"] for x in typed.output.splitlines()] == ["m3"]
    table = runner.invoke(app, ["events", "-c", str(workspace_file), "--user-id", "u1"])
    assert table.exit_code == 0
    assert "Signed Up" in table.output and "Viewed" not in table.output


def test_rejections(inproc: InProcess, workspace_file: Path) -> None:
    send(inproc, {"type": "track", "userId": "u1"})
    result = runner.invoke(app, ["rejections", "-c", str(workspace_file), "--json"])
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in result.output.splitlines()]
    assert row["code"] == "event_not_defined"
    assert row["payload"] == {"type": "track", "userId": "u1"}
    table = runner.invoke(app, ["rejections", "-c", str(workspace_file)])
    assert "event_not_defined" in table.output


def test_events_before_any_data(tmp_path: Path) -> None:
    result = runner.invoke(app, ["events", "--data-dir", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "no events in" in result.output and "mainstem serve" in result.output


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["events", "--help"],
        ["init", "--help"],
        ["config", "check", "--help"],
        ["rejections", "--help"],
        ["version"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)


def test_serve_help_lists_every_setting() -> None:
    from mainstem.settings import SETTINGS

    output = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    for setting in SETTINGS:
        assert setting.flag in output


def test_follow_tails_new_events(server: ServerProcess) -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mainstem",
            "events",
            "--follow",
            "--json",
            "--config",
            str(server.config_path),
            "--data-dir",
            str(server.data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as follower:
        time.sleep(1.0)  # let it print the (empty) history and start polling
        import httpx

        response = httpx.post(
            f"{server.url}/v1/track",
            json={
                "writeKey": WRITE_KEY,
                "userId": "tail",
                "event": "Tailed",
                "messageId": "tail-1",
            },
        )
        assert response.status_code == 200
        assert follower.stdout is not None
        line = follower.stdout.readline()
        follower.terminate()
        assert json.loads(line)["message"]["messageId"] == "tail-1"
