"""``serve`` refuses a network address with auth off, unless told it is meant.

The refusal happens before anything binds or touches the database, so it is tested on
addresses this machine may not even have (192.0.2.1 is TEST-NET-1). Where a server must
start on 0.0.0.0 (the bypasses) it is stopped as soon as /health answers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from local_telemetry.config import ConfigurationError, check_bind, is_loopback, load_settings
from support import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update(
        TELEMETRY_DB_PATH=str(tmp_path / "t.sqlite"),
        TELEMETRY_API_PORT=str(free_port()),
        TELEMETRY_ALERT_INTERVAL_SECONDS="0",
        **extra,
    )
    return env


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_telemetry", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "[::]", "example.invalid"])
def test_a_network_bind_without_auth_exits_2_and_says_how_to_enable_auth(
    tmp_path: Path, host: str
) -> None:
    result = serve(serve_env(tmp_path), "--host", host)
    assert result.returncode == 2, result.stderr
    assert "TELEMETRY_API_AUTH_ENABLED=true" in result.stderr
    assert "TELEMETRY_API_AUTH_TOKEN" in result.stderr
    assert "--allow-unauthenticated-network" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "t.sqlite").exists()  # refused before anything was opened


def test_the_host_from_the_environment_is_checked_too(tmp_path: Path) -> None:
    result = serve(serve_env(tmp_path, TELEMETRY_API_HOST="0.0.0.0"))
    assert result.returncode == 2
    assert "refusing to bind '0.0.0.0'" in result.stderr


@contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[str]:
    """``serve`` running; yields its URL on 127.0.0.1 (reachable through 0.0.0.0 too)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "local_telemetry", "serve", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{env['TELEMETRY_API_PORT']}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the server did not become healthy"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_the_flag_allows_an_unauthenticated_network_bind(tmp_path: Path) -> None:
    env = serve_env(tmp_path)
    with serving(env, "--host", "0.0.0.0", "--allow-unauthenticated-network") as url:
        assert httpx.get(f"{url}/api/v1/runs").status_code == 200  # auth is really off


def test_the_environment_variable_allows_it_too(tmp_path: Path) -> None:
    env = serve_env(tmp_path, TELEMETRY_ALLOW_UNAUTHENTICATED_NETWORK="true")
    with serving(env, "--host", "0.0.0.0") as url:
        assert httpx.get(f"{url}/health").status_code == 200


def test_with_auth_on_a_network_bind_needs_no_flag(tmp_path: Path) -> None:
    env = serve_env(tmp_path, TELEMETRY_API_AUTH_ENABLED="true", TELEMETRY_API_AUTH_TOKEN="t0k")
    with serving(env, "--host", "0.0.0.0") as url:
        assert httpx.get(f"{url}/api/v1/runs").status_code == 401
        assert httpx.get(f"{url}/api/v1/runs", headers={"Authorization": "Bearer t0k"}).is_success


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("::ffff:10.0.0.5", False),
        ("my-host.example", False),
        ("", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    settings = load_settings(api_host=host or "x", db_path=Path("unused.sqlite"))
    if loopback:
        check_bind(settings)
    else:
        with pytest.raises(ConfigurationError, match="TELEMETRY_API_AUTH_ENABLED=true"):
            check_bind(settings)


def _dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    final = text[text.rindex("\nFROM ") :]
    pairs: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            pairs.update(re.findall(r"(TELEMETRY_\w+)=(\S+)", line))
    return pairs


def test_the_container_images_settings_pass_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Dockerfile binds 0.0.0.0 (the container's own namespace) and says so."""
    env = _dockerfile_env()
    assert env["TELEMETRY_API_HOST"] == "0.0.0.0"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    check_bind(load_settings())


@pytest.mark.parametrize("service", ["telemetry", "telemetry-replica"])
def test_compose_services_turn_auth_on(monkeypatch: pytest.MonkeyPatch, service: str) -> None:
    """Compose publishes the port on every interface: its services run with auth on."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = {**_dockerfile_env(), **compose["services"][service]["environment"]}
    assert env["TELEMETRY_API_AUTH_ENABLED"] == "true"
    assert env["TELEMETRY_API_AUTH_TOKEN"].startswith("${TELEMETRY_API_AUTH_TOKEN:?")
    env.pop("TELEMETRY_ALLOW_UNAUTHENTICATED_NETWORK")  # not what lets it start
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    check_bind(load_settings())
