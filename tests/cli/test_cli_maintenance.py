"""``local-telemetry purge`` and ``local-telemetry stale`` against real servers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cli_support import clean_env, cli, cli_against
from support import ServerProcess, StartServer, free_port, new_run

STALE_WAIT_SECONDS = 1.5


def ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat().replace("+00:00", "Z")


def add(server: ServerProcess, **fields: Any) -> str:
    body = new_run(**fields)
    reply = httpx.post(f"{server.url}/api/v1/runs", json=body, timeout=30)
    assert reply.status_code == 201, reply.text
    event_id: str = body["event_id"]
    return event_id


def run_of(server: ServerProcess, event_id: str) -> dict[str, Any] | None:
    reply = httpx.get(f"{server.url}/api/v1/runs/{event_id}", timeout=30)
    if reply.status_code == 404:
        return None
    assert reply.status_code == 200, reply.text
    run: dict[str, Any] = reply.json()
    return run


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_purge_dry_run_then_yes_deletes_the_old_runs(start_server: StartServer) -> None:
    server = start_server()
    old = [add(server, start_time=ago(400)), add(server, start_time=ago(380))]
    young = add(server, start_time=ago(2))

    planned = ok_json(cli_against(server, "purge", "--older-than", "200d", "--dry-run", "--json"))
    assert planned["dry_run"] is True
    assert (planned["runs_deleted"], planned["payload_cutoff"]) == (2, None)
    assert all(run_of(server, e) is not None for e in old)

    human = cli_against(server, "purge", "--older-than", "200d", "--dry-run")
    assert human.returncode == 0, human.stderr
    assert "Would purge (dry run):" in human.stdout
    assert "deleting runs that started before " in human.stdout
    assert any(line.split()[-2:] == ["deleted", "2"] for line in human.stdout.splitlines())

    done = ok_json(cli_against(server, "purge", "--older-than", "200d", "--yes", "--json"))
    assert done["dry_run"] is False
    assert done["runs_deleted"] == 2
    assert all(run_of(server, e) is None for e in old)
    assert run_of(server, young) is not None


def test_purge_blanks_payloads_with_its_own_age(start_server: StartServer) -> None:
    server = start_server()
    old = add(server, start_time=ago(40), error_details="Traceback ...")
    args = ("purge", "--payloads-older-than", "30d", "--yes", "--json")
    done = ok_json(cli_against(server, *args))
    assert (done["payload_blanked_runs"], done["runs_deleted"]) == (1, 0)
    run = run_of(server, old)
    assert run is not None
    assert run["error_details"] is None


def test_purge_without_a_terminal_needs_yes(start_server: StartServer) -> None:
    server = start_server()
    old = add(server, start_time=ago(400))
    env = clean_env(TELEMETRY_API_URL=server.url)
    result = subprocess.run(
        [sys.executable, "-m", "local_telemetry", "purge", "--older-than", "200d"],
        env=env,
        stdin=subprocess.DEVNULL,  # not a terminal: no one could answer a prompt
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "pass --yes to purge without a prompt" in result.stderr
    assert run_of(server, old) is not None


def test_stale_dry_run_then_close(start_server: StartServer) -> None:
    server = start_server()
    agent = f"crashy-{uuid.uuid4().hex[:8]}"
    stale = add(server, agent_name=agent)
    done = add(server, status="success", end_time="2026-01-12T10:31:00Z")
    time.sleep(STALE_WAIT_SECONDS)

    planned = ok_json(cli_against(server, "stale", "--older-than", "1s", "--dry-run", "--json"))
    assert (planned["dry_run"], planned["closed"], planned["event_ids"]) == (True, 1, [stale])
    run = run_of(server, stale)
    assert run is not None
    assert run["status"] == "running"

    human = cli_against(server, "stale", "--older-than", "1s", "--dry-run")
    assert human.returncode == 0, human.stderr
    assert "would close 1 stale run as timeout" in human.stdout
    assert stale in human.stdout
    assert agent in human.stdout

    closed = ok_json(
        cli_against(server, "stale", "--older-than", "1s", "--mark", "cancelled", "--json")
    )
    assert (closed["dry_run"], closed["closed"], closed["event_ids"]) == (False, 1, [stale])
    run = run_of(server, stale)
    assert run is not None
    assert run["status"] == "cancelled"
    assert run_of(server, done)["status"] == "success"  # type: ignore[index]

    again = cli_against(server, "stale", "--older-than", "1s")
    assert again.returncode == 0, again.stderr
    assert "closed 0 stale runs" in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("stale", "--older-than", "soon"), "--older-than: 'soon' is not a duration"),
        (("stale", "--older-than", "0h"), "longer than 0"),
        (("stale", "--older-than", "1h", "--mark", "running"), "--mark must be one of"),
        (("purge", "--older-than", "90x", "--yes"), "--older-than: '90x' is not a duration"),
        (("purge", "--payloads-older-than", "5s", "--yes"), "--payloads-older-than"),
        (("purge", "--yes"), "give --older-than and/or --payloads-older-than"),
    ],
)
def test_bad_arguments_exit_2(args: tuple[str, ...], message: str) -> None:
    # Checked before any request: the URL points at nothing.
    result = cli(*args, TELEMETRY_API_URL=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert message in result.stderr


def test_stale_older_than_is_required() -> None:
    result = cli("stale")
    assert result.returncode == 2
    assert "--older-than" in result.stderr


def test_a_bad_stale_timeout_setting_stops_the_server_at_start() -> None:
    result = cli(
        "serve",
        timeout=30,
        TELEMETRY_STALE_RUN_TIMEOUT="daily",
        TELEMETRY_API_PORT=str(free_port()),
    )
    assert result.returncode == 2
    assert "TELEMETRY_STALE_RUN_TIMEOUT" in result.stderr
    assert "'daily' is not a duration" in result.stderr
