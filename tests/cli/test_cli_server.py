"""The ``local-telemetry`` command line, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli_support import clean_env, cli
from local_telemetry import __version__
from local_telemetry.config import describe_settings
from support import free_port


def test_serve_help_lists_every_setting_with_its_default() -> None:
    result = cli("serve", "--help", COLUMNS="200")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    settings = describe_settings()
    assert len(settings) >= 15
    for env, default, _ in settings:
        assert f"{env} (default: {default or 'unset'})" in out, env


def test_serve_help_shows_the_default_address_and_port() -> None:
    out = cli("serve", "--help", COLUMNS="200").stdout
    assert "TELEMETRY_API_HOST (default: 127.0.0.1)" in out
    assert "TELEMETRY_API_PORT (default: 8765)" in out
    for option in ("--host", "--port", "--db-path"):
        assert option in out


def test_version_prints_the_package_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


def test_more_than_one_worker_is_refused_before_opening_the_database(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.sqlite"
    result = cli(
        "serve",
        TELEMETRY_API_WORKERS="2",
        TELEMETRY_DB_PATH=str(db),
        TELEMETRY_API_PORT=str(free_port()),
    )
    assert result.returncode == 2
    assert "TELEMETRY_API_WORKERS must be 1" in result.stderr
    assert "SQLite" in result.stderr
    assert not db.exists()


def test_a_bad_setting_exits_2_with_the_variable_named(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.sqlite"
    result = cli("serve", TELEMETRY_RATE_LIMIT_RPM="fast", TELEMETRY_DB_PATH=str(db))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "TELEMETRY_RATE_LIMIT_RPM" in result.stderr
    assert "Traceback" not in result.stderr
    assert not db.exists()


def test_serve_options_override_the_environment(tmp_path: Path) -> None:
    env_db = tmp_path / "from-env.sqlite"
    option_db = tmp_path / "from-option.sqlite"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local_telemetry",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db-path",
            str(option_db),
        ],
        env=clean_env(
            TELEMETRY_API_HOST="192.0.2.1",  # not an address of this machine
            TELEMETRY_API_PORT=str(free_port()),
            TELEMETRY_DB_PATH=str(env_db),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        if health is None:
            process.terminate()
            pytest.fail(f"server did not answer:\n{process.communicate(timeout=15)[1].decode()}")
        assert health.status_code == 200
        assert Path(health.json()["db_path"]) == option_db
        assert option_db.exists()
        assert not env_db.exists()
    finally:
        process.terminate()
        process.wait(15)


def test_version_prints_the_package_api_python_and_sqlite_versions() -> None:
    import json
    import platform
    import sqlite3

    plain = cli("version")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == (
        f"local-telemetry {__version__} (API 3.0.0, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version})"
    )
    as_json = cli("version", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "version": __version__,
        "api_version": "3.0.0",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
