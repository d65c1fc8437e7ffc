"""The service definitions in ``deploy/``: a systemd unit and a launchd agent.

No init system runs in CI, so each file is checked the way its tool would read it
(``systemd-analyze verify``; ``plistlib`` for the property list) and the command it
starts is run for real, with its environment, to show it serves and stops the way the
restart policy written in the file expects (SIGTERM is a clean stop, a bad setting
exits 2).
"""

from __future__ import annotations

import os
import plistlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import free_port

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "systemd" / "local-telemetry.service"
PLIST = ROOT / "deploy" / "launchd" / "com.local-telemetry.server.plist"
SCRIPT = Path(sys.executable).with_name("local-telemetry")
"""The installed console script, standing in for the path of a real installation."""


def _unit() -> dict[str, list[str]]:
    """``Key -> values`` of the unit (sections merged; keys here are unique anyway)."""
    found: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


def _plist() -> dict[str, Any]:
    with PLIST.open("rb") as handle:
        loaded: dict[str, Any] = plistlib.load(handle)
    return loaded


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze missing: ./dev test installs Debian's systemd"
    return subprocess.run(
        [analyze, "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's script (verify insists that
    the program exists)."""
    command = _unit()["ExecStart"][0].split()[0]
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(command, str(SCRIPT)))
    return copy


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    result = _verify(_installed_copy(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_systemd_analyze_verify_does_flag_a_bad_unit(tmp_path: Path) -> None:
    bad = tmp_path / UNIT.name
    bad.write_text(_installed_copy(tmp_path).read_text().replace("UMask=", "UMaks="))
    result = _verify(bad)
    assert "Unknown key" in result.stderr
    assert "UMaks" in result.stderr


def test_unit_runs_serve_from_a_venv_with_state_under_var_lib() -> None:
    unit = _unit()
    assert unit["ExecStart"] == ["/opt/local-telemetry/bin/local-telemetry serve"]
    assert unit["StateDirectory"] == ["local-telemetry"]
    environment = dict(value.split("=", 1) for value in unit["Environment"])
    assert environment["TELEMETRY_DB_PATH"].startswith("/var/lib/local-telemetry/")
    assert environment["TELEMETRY_API_HOST"] == "127.0.0.1"
    assert unit["EnvironmentFile"] == ["-/etc/local-telemetry/env"]
    assert unit["WantedBy"] == ["multi-user.target"]


def _environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update(overrides)
    return env


def _serve_until_healthy(
    argv: list[str], env: dict[str, str], port: int
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"did not serve:\n{process.communicate(timeout=15)[1].decode()}")


def _stops_cleanly_on_sigterm(process: subprocess.Popen[bytes]) -> bool:
    """SIGTERM ends the server after a graceful shutdown: uvicorn finishes, then
    re-raises the signal, so the status is "killed by SIGTERM" (or 0). systemd counts
    SIGTERM as a clean exit for ``Restart=on-failure`` (man systemd.service,
    SuccessExitStatus), so neither restarts a stopped server."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    graceful = b"Application shutdown complete" in stderr
    return graceful and process.returncode in (0, -signal.SIGTERM)


def test_the_units_command_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """``Restart=on-failure``: a stop (SIGTERM) must count as clean, or systemd restarts."""
    unit = _unit()
    argv = [str(SCRIPT), *unit["ExecStart"][0].split()[1:]]
    environment = dict(value.split("=", 1) for value in unit["Environment"])
    port = free_port()
    environment.update(TELEMETRY_API_PORT=str(port), TELEMETRY_DB_PATH=str(tmp_path / "t.sqlite"))
    process = _serve_until_healthy(argv, _environment(**environment), port)
    assert _stops_cleanly_on_sigterm(process)
    assert (tmp_path / "t.sqlite").exists()


def test_a_bad_setting_exits_with_the_status_the_unit_does_not_restart(tmp_path: Path) -> None:
    (prevent,) = _unit()["RestartPreventExitStatus"]
    result = subprocess.run(
        [str(SCRIPT), "serve"],
        env=_environment(TELEMETRY_API_PORT="not-a-port", TELEMETRY_DB_PATH=str(tmp_path / "t")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == int(prevent)
    assert "TELEMETRY_API_PORT" in result.stderr


def test_plist_is_a_launchd_agent_for_serve() -> None:
    plist = _plist()
    assert plist["Label"] == PLIST.name.removesuffix(".plist")
    program = plist["ProgramArguments"]
    assert program[0].endswith("/bin/local-telemetry")
    assert program[1:] == ["serve"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert isinstance(plist["ThrottleInterval"], int)
    assert isinstance(plist["ExitTimeOut"], int)
    environment = plist["EnvironmentVariables"]
    assert all(isinstance(v, str) for v in environment.values())
    assert environment["TELEMETRY_API_HOST"] == "127.0.0.1"
    # launchd expands neither ~ nor $VARS: every path must be absolute.
    paths = [
        program[0],
        environment["TELEMETRY_DB_PATH"],
        plist["WorkingDirectory"],
        plist["StandardOutPath"],
        plist["StandardErrorPath"],
    ]
    assert all(path.startswith("/") and "~" not in path and "$" not in path for path in paths)


def test_the_plists_command_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """The agent's command serves with the plist's environment and shuts down gracefully."""
    plist = _plist()
    port = free_port()
    environment = dict(plist["EnvironmentVariables"])
    environment.update(TELEMETRY_API_PORT=str(port), TELEMETRY_DB_PATH=str(tmp_path / "t.sqlite"))
    argv = [str(SCRIPT), *plist["ProgramArguments"][1:]]
    process = _serve_until_healthy(argv, _environment(**environment), port)
    assert _stops_cleanly_on_sigterm(process)
