"""``local-telemetry keys create|list|revoke`` as a subprocess against a real server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from cli_support import cli_against
from support import ServerProcess

TOKEN = "keys-cli-admin-token"
KEY_FORM = re.compile(r"^lt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "TELEMETRY_API_AUTH_ENABLED": "true",
        "TELEMETRY_API_AUTH_TOKEN": TOKEN,
        "TELEMETRY_ALERT_INTERVAL_SECONDS": "0",
    }
    process = ServerProcess(tmp_path_factory.mktemp("keys-cli") / "t.sqlite", env)
    process.start()
    yield process
    process.stop()


def runs_status(server: ServerProcess, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{server.url}/api/v1/runs", headers=headers, timeout=30).status_code


def test_create_prints_the_key_alone_and_it_works(server: ServerProcess) -> None:
    result = cli_against(server, "keys", "create", "--scope", "read", "--name", "ci reader")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert result.stdout == key + "\n"  # nothing else on stdout
    assert KEY_FORM.match(key)
    assert "not shown again" in result.stderr
    assert runs_status(server, key) == 200


def test_create_json_list_and_revoke(server: ServerProcess) -> None:
    created = cli_against(
        server,
        "keys",
        "create",
        "--scope",
        "ingest",
        "--name",
        "agent",
        "--expires-in",
        "30d",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert set(body) == {"id", "key", "scope", "expires_at"}
    assert body["scope"] == "ingest"
    assert body["expires_at"] is not None
    assert runs_status(server, body["key"]) == 200

    listed = cli_against(server, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert body["key"] not in listed.stdout
    (mine,) = [k for k in json.loads(listed.stdout) if k["id"] == body["id"]]
    assert mine["name"] == "agent"
    assert mine["active"] is True
    table = cli_against(server, "keys", "list")
    assert table.returncode == 0, table.stderr
    assert body["key"] not in table.stdout
    assert mine["prefix"] in table.stdout
    assert "active" in table.stdout

    revoked = cli_against(server, "keys", "revoke", str(body["id"]))
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked key {body['id']}" in revoked.stdout
    assert runs_status(server, body["key"]) == 401
    after = cli_against(server, "keys", "list")
    assert "revoked" in after.stdout


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (("revoke", "999999"), 2),  # 404 from the server: a bad argument
        (("create", "--scope", "root", "--name", "x"), 2),
        (("create", "--scope", "read", "--name", "x", "--expires-in", "soon"), 2),
        (("create", "--scope", "read"), 2),
    ],
)
def test_bad_arguments_exit_2(server: ServerProcess, args: tuple[str, ...], status: int) -> None:
    result = cli_against(server, "keys", *args)
    assert result.returncode == status, result.stdout + result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_keys_need_an_admin_token(server: ServerProcess) -> None:
    reader = cli_against(server, "keys", "create", "--scope", "read", "--name", "r").stdout.strip()
    for token, status in ((reader, "403"), ("wrong", "401"), ("", "401")):
        result = cli_against(
            server,
            "keys",
            "list",
            TELEMETRY_API_AUTH_TOKEN="",
            TELEMETRY_API_TOKEN=token,
        )
        assert result.returncode == 1
        assert status in result.stderr
        assert result.stdout == ""
