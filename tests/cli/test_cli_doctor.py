"""``local-telemetry doctor`` as a real subprocess, against real servers and files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

from cli_support import cli, cli_against
from local_telemetry import __version__
from support import StartServer, free_port

SQLITE_CHECKS = {
    "sqlite.directory",
    "sqlite.file",
    "sqlite.journal_mode",
    "sqlite.quick_check",
    "sqlite.schema",
    "sqlite.auto_vacuum",
    "sqlite.disk_space",
    "sqlite.wal_size",
}
SERVER_CHECKS = {"server.health", "server.version", "server.auth"}
ALWAYS = {"version", "settings", "backend", "python", "sqlite.library"}


def _checks(stdout: str) -> dict[str, dict[str, Any]]:
    report = json.loads(stdout)
    return {check["name"]: check for check in report["checks"]}


def test_healthy_server_and_database_pass_every_check(start_server: StartServer) -> None:
    server = start_server()
    result = cli_against(server, "doctor", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    checks = {check["name"]: check for check in report["checks"]}
    assert set(checks) >= ALWAYS | SQLITE_CHECKS | SERVER_CHECKS
    for name in ALWAYS | SERVER_CHECKS | SQLITE_CHECKS - {"sqlite.disk_space"}:
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["sqlite.journal_mode"]["detail"] == "wal"
    assert checks["sqlite.schema"]["detail"].endswith("(current)")
    assert checks["server.auth"]["detail"] == "auth disabled on the server"
    assert __version__ in checks["version"]["detail"]
    for check in checks.values():
        assert set(check) == {"name", "status", "detail", "fix"}
        assert check["status"] in ("ok", "warn", "fail")


def test_human_output_has_one_line_per_check_and_the_version(start_server: StartServer) -> None:
    server = start_server()
    result = cli_against(server, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok") and f"local-telemetry {__version__}" in line for line in lines)
    for name in ALWAYS | SQLITE_CHECKS | SERVER_CHECKS:
        assert any(line.split()[1:2] == [name] for line in lines), name
    assert "0 failed" in result.stderr


def test_unwritable_database_directory_fails_with_the_fix(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # Root writes through any mode bits: a directory that is a regular file fails
        # for everyone, for a real reason.
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a file")
        db = blocker / "telemetry.sqlite"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)  # 0o500
        db = locked / "telemetry.sqlite"
    try:
        result = cli("doctor", "--offline", "--json", TELEMETRY_DB_PATH=str(db))
    finally:
        if os.geteuid() != 0:
            db.parent.chmod(0o700)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    directory = _checks(result.stdout)["sqlite.directory"]
    assert directory["status"] == "fail"
    assert "write access" in directory["fix"]
    human = cli("doctor", "--offline", TELEMETRY_DB_PATH=str(db))
    if os.geteuid() != 0:
        db.parent.chmod(0o700)
    assert human.returncode == 1
    assert any(
        line.startswith("FAIL") and "sqlite.directory" in line for line in human.stdout.splitlines()
    )


def test_a_server_that_is_not_running_fails_unless_offline(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.sqlite"
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("doctor", "--json", TELEMETRY_DB_PATH=str(db), TELEMETRY_API_URL=url)
    assert result.returncode == 1
    health = _checks(result.stdout)["server.health"]
    assert health["status"] == "fail"
    assert url in health["detail"]
    assert "--offline" in health["fix"]

    offline = cli("doctor", "--offline", "--json", TELEMETRY_DB_PATH=str(db), TELEMETRY_API_URL=url)
    assert offline.returncode == 0, offline.stdout
    checks = _checks(offline.stdout)
    assert not SERVER_CHECKS & set(checks)
    assert checks["sqlite.file"]["status"] == "warn"  # no database yet: the server makes it
    assert not db.exists()  # the doctor never creates the database


def test_auth_enabled_server_checks_the_clis_token(start_server: StartServer) -> None:
    server = start_server(TELEMETRY_API_AUTH_ENABLED="true", TELEMETRY_API_AUTH_TOKEN="s3cret")
    # cli_against passes the server's own TELEMETRY_API_AUTH_TOKEN: accepted.
    good = cli_against(server, "doctor", "--json")
    assert good.returncode == 0, good.stdout
    assert _checks(good.stdout)["server.auth"]["status"] == "ok"

    wrong = cli_against(server, "doctor", "--json", TELEMETRY_API_TOKEN="wrong")
    assert wrong.returncode == 1
    auth = _checks(wrong.stdout)["server.auth"]
    assert auth["status"] == "fail"
    assert "TELEMETRY_API_TOKEN" in auth["fix"]

    none = cli(
        "doctor",
        "--json",
        TELEMETRY_API_URL=server.url,
        TELEMETRY_DB_PATH=str(server.db_path),
    )
    assert none.returncode == 0, none.stdout
    auth = _checks(none.stdout)["server.auth"]
    assert auth["status"] == "warn"
    assert "TELEMETRY_API_TOKEN" in auth["fix"]


def test_bad_settings_fail_with_the_variable_named(tmp_path: Path) -> None:
    result = cli(
        "doctor",
        "--offline",
        "--json",
        TELEMETRY_DB_PATH=str(tmp_path / "t.sqlite"),
        TELEMETRY_API_PORT="not-a-port",
    )
    assert result.returncode == 1
    settings = _checks(result.stdout)["settings"]
    assert settings["status"] == "fail"
    assert "TELEMETRY_API_PORT" in settings["detail"]


def test_retention_without_incremental_vacuum_warns_with_the_conversion(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(db)) as conn:  # made before auto_vacuum was set: NONE
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.commit()
    result = cli(
        "doctor",
        "--offline",
        "--json",
        TELEMETRY_DB_PATH=str(db),
        TELEMETRY_RETENTION_RUN_DAYS="30",
    )
    checks = _checks(result.stdout)
    assert checks["sqlite.auto_vacuum"]["status"] == "warn"
    assert "PRAGMA auto_vacuum = INCREMENTAL; VACUUM;" in checks["sqlite.auto_vacuum"]["fix"]
    assert checks["sqlite.schema"]["status"] == "warn"  # no schema version recorded
    assert checks["sqlite.journal_mode"]["status"] == "warn"  # a fresh file: delete mode
    assert result.returncode == 0  # warnings only
