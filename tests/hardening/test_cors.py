"""CORS: off by default, an exact allow-list when configured; through real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import ServerProcess, StartServer, free_port, new_run

ALLOWED = "https://ci.example.com"
ALSO_ALLOWED = "http://localhost:3000"
STRANGER = "https://evil.example.net"


def preflight(client: httpx.Client, path: str, origin: str, method: str = "POST") -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    return client.options(path, headers=headers)


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def test_cors_is_off_by_default(api: httpx.Client) -> None:
    for path in ("/api/v1/kpis", "/api/v1/runs", "/health", "/"):
        response = api.get(path, headers={"Origin": ALLOWED})
        assert response.status_code == 200
        assert cors_headers(response) == {}
    created = api.post("/api/v1/runs", json=new_run(), headers={"Origin": ALLOWED})
    assert created.status_code == 201
    assert cors_headers(created) == {}


@pytest.mark.parametrize("path", ["/api/v1/runs", "/api/v1/kpis", "/health", "/no/such/path"])
def test_preflight_without_cors_is_refused_plainly(api: httpx.Client, path: str) -> None:
    response = preflight(api, path, ALLOWED)
    assert response.status_code in (404, 405), response.text[:300]
    assert cors_headers(response) == {}


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    env = {"TELEMETRY_CORS_ORIGINS": f"{ALLOWED}, {ALSO_ALLOWED}"}
    server = ServerProcess(tmp_path_factory.mktemp("cors") / "telemetry.sqlite", env)
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http
    server.stop()


@pytest.mark.parametrize("origin", [ALLOWED, ALSO_ALLOWED])
def test_a_listed_origin_gets_its_origin_echoed(cors_server: httpx.Client, origin: str) -> None:
    for response in (
        cors_server.get("/api/v1/kpis", headers={"Origin": origin}),  # FastAPI route
        cors_server.post("/api/v1/runs", json=new_run(), headers={"Origin": origin}),  # fast
        cors_server.post("/api/v1/runs", json={}, headers={"Origin": origin}),  # a 422
    ):
        assert response.status_code in (200, 201, 422)
        assert response.headers["access-control-allow-origin"] == origin
        assert "access-control-allow-credentials" not in response.headers
        assert "Origin" in response.headers["vary"]
        exposed = response.headers["access-control-expose-headers"].lower()
        assert "x-ratelimit-remaining" in exposed
        assert "retry-after" in exposed


def test_a_listed_origin_gets_a_proper_preflight(cors_server: httpx.Client) -> None:
    for path, method in (("/api/v1/runs", "POST"), ("/api/v1/runs/x", "PATCH")):
        response = preflight(cors_server, path, ALLOWED, method)
        assert response.status_code in (200, 204), response.text[:300]
        assert response.headers["access-control-allow-origin"] == ALLOWED
        methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
        assert {"GET", "POST", "PATCH"} <= methods
        allowed_headers = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers
        assert "content-type" in allowed_headers
        assert int(response.headers["access-control-max-age"]) > 0
        assert "Origin" in response.headers["vary"]
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "origin",
    [STRANGER, "https://ci.example.com.evil.net", "http://ci.example.com", "null", ALLOWED + "/"],
)
def test_other_origins_get_nothing(cors_server: httpx.Client, origin: str) -> None:
    response = cors_server.get("/api/v1/kpis", headers={"Origin": origin})
    assert response.status_code == 200
    assert cors_headers(response) == {}
    # The answer depends on Origin, so caches are told.
    assert "Origin" in response.headers["vary"]
    refused = preflight(cors_server, "/api/v1/runs", origin)
    assert refused.status_code in (404, 405), refused.text[:300]
    assert cors_headers(refused) == {}


def test_a_request_without_origin_is_unchanged(cors_server: httpx.Client) -> None:
    response = cors_server.get("/api/v1/kpis")
    assert response.status_code == 200
    assert cors_headers(response) == {}


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``local-telemetry serve`` with ``env`` that must fail before listening."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    full.update(
        TELEMETRY_DB_PATH=str(tmp_path / "telemetry.sqlite"),
        TELEMETRY_API_HOST="127.0.0.1",
        TELEMETRY_API_PORT=str(free_port()),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "local_telemetry", "serve"],
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    "origins", ["*", "ci.example.com", "https://ci.example.com/path", "ftp://x.example"]
)
def test_bad_origin_lists_refuse_to_start(tmp_path: Path, origins: str) -> None:
    result = serve(tmp_path, TELEMETRY_CORS_ORIGINS=origins)
    assert result.returncode != 0
    assert "TELEMETRY_CORS_ORIGINS" in result.stderr
    assert "Traceback" not in result.stderr


def test_any_origin_is_allowed_with_auth_on(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_CORS_ORIGINS="*",
        TELEMETRY_API_AUTH_ENABLED="true",
        TELEMETRY_API_AUTH_TOKEN="h4-cors-token",
    )
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.get("/health", headers={"Origin": STRANGER})
        assert response.headers["access-control-allow-origin"] == "*"
        refused = http.get("/api/v1/kpis", headers={"Origin": STRANGER})
        assert refused.status_code == 401  # the browser may read the refusal, no data
        assert refused.headers["access-control-allow-origin"] == "*"
        answer = preflight(http, "/api/v1/kpis", STRANGER, "GET")
        assert answer.status_code in (200, 204)
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()
