"""Security headers on every kind of response, through real server processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support import ServerProcess, new_run

REQUIRED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_secure(response: httpx.Response, referrer: str = "no-referrer") -> None:
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert response.status_code < 500, where
    for name, value in {**REQUIRED, "referrer-policy": referrer}.items():
        assert response.headers.get_list(name) == [value], (where, name, response.headers)


@pytest.fixture(scope="module")
def stored(shared_server: ServerProcess) -> dict[str, Any]:
    run = new_run()
    with httpx.Client(base_url=shared_server.url, timeout=30) as http:
        assert http.post("/api/v1/runs", json=run).status_code == 201
    return run


def get_paths(client: httpx.Client, run: dict[str, Any]) -> list[str]:
    """Every GET path of the OpenAPI document, path parameters filled in."""
    spec = client.get("/openapi.json").json()
    values = {"event_id": run["event_id"], "key_id": "1", "rule_id": "1", "agent_name": "agent"}
    paths = []
    for template, operations in spec["paths"].items():
        if "get" in operations:
            paths.append(re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), template))
    return paths


def test_every_documented_get_carries_the_headers(
    api: httpx.Client, stored: dict[str, Any]
) -> None:
    paths = get_paths(api, stored)
    assert len(paths) >= 15, paths  # the run, KPI, export, alert and system reads
    for path in paths:
        assert_secure(api.get(path))


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/no/such/page", {}, 404),
        ("GET", "/api/v1/runs/no-such-run", {}, 404),  # fast path 404
        ("DELETE", "/api/v1/kpis", {}, 405),
        ("PUT", "/health", {}, 405),
        ("POST", "/api/v1/runs", {"content": b"x" * (2 * 1024 * 1024)}, 413),
        (
            "POST",
            "/api/v1/runs",
            {"content": b"{}", "headers": {"content-type": "text/plain"}},
            415,
        ),
        ("POST", "/api/v1/runs", {"json": {"agent_name": "x"}}, 422),
        ("GET", "/api/v1/kpis", {"params": {"from": "yesterday"}}, 422),
        ("POST", "/api/v1/runs", {"json": "RUN"}, 201),  # fast path
        ("POST", "/api/v1/runs/batch", {"json": ["RUN"]}, 200),
        ("GET", "/static/app.css", {}, 200),
        ("GET", "/docs", {}, 200),
        ("GET", "/redoc", {}, 200),
        ("GET", "/openapi.json", {}, 200),
        ("GET", "/health", {}, 200),
        ("OPTIONS", "/api/v1/runs", {"headers": {"origin": "https://x.example"}}, 405),
    ],
    ids=[
        "404",
        "fast-404",
        "405",
        "405-health",
        "413",
        "415",
        "fast-422",
        "fastapi-422",
        "fast-201",
        "batch-200",
        "static",
        "docs",
        "redoc",
        "openapi",
        "health",
        "options",
    ],
)
def test_every_kind_of_answer_carries_the_headers(
    api: httpx.Client, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    if kwargs.get("json") == "RUN":
        kwargs = {"json": new_run()}
    elif kwargs.get("json") == ["RUN"]:
        kwargs = {"json": [new_run()]}
    response = api.request(method, path, **kwargs)
    assert response.status_code == status, response.text[:300]
    assert_secure(response)


def test_docs_get_no_content_security_policy(api: httpx.Client) -> None:
    # Swagger UI and ReDoc load from a CDN: a strict CSP would blank them.
    for path in ("/docs", "/redoc"):
        assert "content-security-policy" not in api.get(path).headers


def test_dashboard_keeps_its_own_policy(api: httpx.Client) -> None:
    response = api.get("/")
    assert response.status_code == 200
    # The dashboard's headers win: its strict CSP, and same-origin referrers (its forms
    # need a real Origin header, which no-referrer would turn into "null").
    assert_secure(response, referrer="same-origin")
    csp = response.headers.get_list("content-security-policy")
    assert len(csp) == 1
    assert "frame-ancestors 'none'" in csp[0]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    env = {
        "TELEMETRY_API_AUTH_ENABLED": "true",
        "TELEMETRY_API_AUTH_TOKEN": "h4-headers-token",
        "TELEMETRY_RATE_LIMIT_ENABLED": "true",
        "TELEMETRY_RATE_LIMIT_RPM": "2",
    }
    server = ServerProcess(tmp_path_factory.mktemp("headers") / "telemetry.sqlite", env)
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http
    server.stop()


def test_refused_and_limited_answers_carry_the_headers(guarded: httpx.Client) -> None:
    statuses = []
    for _ in range(3):
        response = guarded.post("/api/v1/runs", json=new_run())
        assert_secure(response)
        statuses.append(response.status_code)
    assert statuses == [401, 401, 429]
