"""Bearer-token auth (the API token as an admin key; reads need it too since issue 10)
and per-client rate limiting, through real servers. Scoped keys: tests/hardening/."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import ServerProcess, StartServer, free_port, new_run, query

TOKEN = "s3cret"
GOOD = {"Authorization": f"Bearer {TOKEN}"}
AUTH_ENV = {"TELEMETRY_API_AUTH_ENABLED": "true", "TELEMETRY_API_AUTH_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("auth") / "telemetry.sqlite", AUTH_ENV)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(auth_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth_server.url, timeout=30) as http:
        yield http


@pytest.fixture
def existing(client: httpx.Client) -> dict[str, Any]:
    """A run stored with the right token."""
    run = new_run()
    assert client.post("/api/v1/runs", json=run, headers=GOOD).status_code == 201
    return run


def stored_rows(server: ServerProcess, event_ids: list[str]) -> int:
    """How many of ``event_ids`` are in the server's database (read-only, no API call)."""
    marks = ",".join("?" * len(event_ids))
    sql = f"SELECT count(*) FROM agent_runs WHERE event_id IN ({marks})"
    return int(query(server, sql, event_ids)[0][0])


def write_requests(event_id: str) -> list[tuple[str, str, Any]]:
    """(method, path, JSON body) of every write endpoint, aimed at run ``event_id``."""
    return [
        ("POST", "/api/v1/runs", new_run()),
        ("POST", "/api/v1/runs/batch", [new_run(), new_run()]),
        ("PATCH", f"/api/v1/runs/{event_id}", {"status": "failure", "items_failed": 3}),
        (
            "POST",
            f"/api/v1/runs/{event_id}/associate-commit",
            {"commit_hash": "abcdef1234", "commit_source": "llm"},
        ),
        ("POST", f"/api/v1/runs/{event_id}/events", [{"message": "secured"}]),
    ]


WRITE_NAMES = ["create", "batch", "update", "associate-commit", "events"]


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text[:300]
    # 'Bearer' without a key; 'Bearer error="invalid_token"' for a wrong one (RFC 6750).
    assert response.headers["www-authenticate"].split(" ")[0] == "Bearer"
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "token" in detail.lower()


def assert_run_untouched(client: httpx.Client, run: dict[str, Any]) -> None:
    stored = client.get(f"/api/v1/runs/{run['event_id']}", headers=GOOD).json()
    assert stored["status"] == "running"
    assert stored["items_failed"] == 0
    assert stored["git_commit_hash"] is None
    assert stored["updated_at"] is None
    assert client.get(f"/api/v1/runs/{run['event_id']}/events", headers=GOOD).json() == []


def assert_nothing_created(client: httpx.Client, body: Any) -> None:
    for item in body if isinstance(body, list) else [body]:
        if "event_id" in item and "start_time" in item:
            found = client.get(f"/api/v1/runs/{item['event_id']}", headers=GOOD)
            assert found.status_code == 404


# ----- auth -----


@pytest.mark.parametrize("index", range(len(WRITE_NAMES)), ids=WRITE_NAMES)
def test_write_without_token_is_401_and_stores_nothing(
    client: httpx.Client, existing: dict[str, Any], index: int
) -> None:
    method, path, body = write_requests(existing["event_id"])[index]
    assert_unauthorized(client.request(method, path, json=body))
    assert_nothing_created(client, body)
    assert_run_untouched(client, existing)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN.upper()}",
        "Bearer",
        TOKEN,
        f"Token {TOKEN}",
        "Basic czNjcmV0OnMzY3JldA==",
        f"Bearer {TOKEN}, Bearer {TOKEN}",
    ],
)
@pytest.mark.parametrize("index", range(len(WRITE_NAMES)), ids=WRITE_NAMES)
def test_write_with_a_wrong_token_is_401_and_stores_nothing(
    client: httpx.Client, existing: dict[str, Any], index: int, authorization: str
) -> None:
    method, path, body = write_requests(existing["event_id"])[index]
    response = client.request(method, path, json=body, headers={"Authorization": authorization})
    assert_unauthorized(response)
    assert_nothing_created(client, body)
    assert_run_untouched(client, existing)


def test_token_is_only_accepted_in_the_authorization_header(
    client: httpx.Client, existing: dict[str, Any]
) -> None:
    run = new_run()
    for attempt in (
        client.post("/api/v1/runs", json=run, headers={"X-API-Key": TOKEN}),
        client.post("/api/v1/runs", json=run, params={"token": TOKEN}),
        client.post("/api/v1/runs", json=run, headers={"Cookie": f"token={TOKEN}"}),
    ):
        assert_unauthorized(attempt)
    assert client.get(f"/api/v1/runs/{run['event_id']}", headers=GOOD).status_code == 404


def test_auth_is_checked_before_the_body_is_read(client: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    assert_unauthorized(client.post("/api/v1/runs", content=b"{not json", headers=headers))
    assert_unauthorized(client.post("/api/v1/runs", content=b"x" * (2 * 1024 * 1024)))
    assert_unauthorized(client.post("/api/v1/runs", content=b"{}", headers={"content-type": "x"}))
    assert_unauthorized(client.patch("/api/v1/runs/no-such-run", json={"status": "success"}))


def test_create_with_the_right_token_is_201_and_stored(client: httpx.Client) -> None:
    run = new_run()
    response = client.post("/api/v1/runs", json=run, headers=GOOD)
    assert response.status_code == 201
    assert response.json()["status"] == "created"
    stored = client.get(f"/api/v1/runs/{run['event_id']}", headers=GOOD).json()
    assert stored["run_id"] == run["run_id"]


def test_every_write_succeeds_with_the_right_token(
    client: httpx.Client, existing: dict[str, Any]
) -> None:
    expected = [201, 200, 200, 200, 201]
    for (method, path, body), status in zip(
        write_requests(existing["event_id"]), expected, strict=True
    ):
        response = client.request(method, path, json=body, headers=GOOD)
        assert response.status_code == status, (path, response.text[:300])
    stored = client.get(f"/api/v1/runs/{existing['event_id']}", headers=GOOD).json()
    assert stored["status"] == "failure"
    assert stored["items_failed"] == 3
    assert stored["git_commit_hash"] == "abcdef1234"
    events = client.get(f"/api/v1/runs/{existing['event_id']}/events", headers=GOOD).json()
    assert [event["message"] for event in events] == ["secured"]


def test_auth_covers_other_write_methods_too(client: httpx.Client) -> None:
    assert_unauthorized(client.delete("/api/v1/runs/anything"))
    assert_unauthorized(client.put("/api/v1/runs/anything", json={}))
    # With the token the request reaches the router, which has no such route.
    assert client.delete("/api/v1/runs/anything", headers=GOOD).status_code == 405


READ_PATHS = [
    "/metrics",
    "/api/v1/runs",
    "/api/v1/runs/{event_id}",
    "/api/v1/runs/{event_id}/commit-url",
    "/api/v1/runs/{event_id}/repo-url",
    "/api/v1/runs/{event_id}/events",
    "/api/v1/metadata",
]


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/docs", "/redoc"])
def test_health_and_docs_need_no_token(
    client: httpx.Client, existing: dict[str, Any], path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text[:300]
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize("path", READ_PATHS)
def test_reads_need_the_token_too(
    client: httpx.Client, existing: dict[str, Any], path: str
) -> None:
    """Changed by issue 10: with auth on, reads are protected too (the v3 guide's
    reference left them open; TELEMETRY_API_AUTH_PUBLIC_READS=true restores that)."""
    target = path.format(event_id=existing["event_id"])
    assert_unauthorized(client.get(target))
    response = client.get(target, headers=GOOD)
    assert response.status_code == 200, response.text[:300]
    assert "www-authenticate" not in response.headers


def test_rejected_writes_leave_the_run_count_unchanged(
    client: httpx.Client, existing: dict[str, Any]
) -> None:
    before = client.get("/metrics", headers=GOOD).json()["total_runs"]
    for method, path, body in write_requests(existing["event_id"]):
        assert client.request(method, path, json=body).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert client.request(method, path, json=body, headers=bad).status_code == 401
    assert client.get("/metrics", headers=GOOD).json()["total_runs"] == before


def test_auth_is_off_by_default(api: httpx.Client) -> None:
    run = new_run()
    assert api.post("/api/v1/runs", json=run).status_code == 201
    assert api.patch(f"/api/v1/runs/{run['event_id']}", json={"status": "success"}).is_success


@pytest.mark.parametrize("token", [None, ""], ids=["unset", "empty"])
def test_server_refuses_to_start_with_auth_enabled_and_no_token(
    tmp_path: Path, token: str | None
) -> None:
    db = tmp_path / "telemetry.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update(
        TELEMETRY_API_AUTH_ENABLED="true",
        TELEMETRY_DB_PATH=str(db),
        TELEMETRY_API_HOST="127.0.0.1",
        TELEMETRY_API_PORT=str(free_port()),
    )
    if token is not None:
        env["TELEMETRY_API_AUTH_TOKEN"] = token
    result = subprocess.run(
        [sys.executable, "-m", "local_telemetry", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "TELEMETRY_API_AUTH_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert not db.exists()


# ----- rate limit -----

RATE_ENV = {"TELEMETRY_RATE_LIMIT_ENABLED": "true", "TELEMETRY_RATE_LIMIT_RPM": "5"}


@pytest.fixture
def limited(start_server: StartServer) -> Iterator[tuple[ServerProcess, httpx.Client]]:
    """A fresh server allowing 5 API requests a minute, and a client for it."""
    server = start_server(**RATE_ENV)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield server, http


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text[:300]
    retry_after = int(response.headers["retry-after"])  # an integer number of seconds
    assert 1 <= retry_after <= 12  # 5 a minute: one request every 12 seconds
    assert response.headers["x-ratelimit-limit"] == "5"
    assert response.headers["x-ratelimit-remaining"] == "0"
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "rate limit" in detail.lower()


def test_requests_over_the_limit_get_429_with_retry_after(
    limited: tuple[ServerProcess, httpx.Client],
) -> None:
    _, client = limited
    remaining = []
    for _ in range(5):
        response = client.get("/api/v1/runs")
        assert response.status_code == 200, response.text[:300]
        assert response.headers["x-ratelimit-limit"] == "5"
        remaining.append(int(response.headers["x-ratelimit-remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    assert_limited(client.get("/api/v1/runs"))
    assert_limited(client.get("/api/v1/runs"))  # still limited: no token came back yet


def test_health_and_metrics_are_never_limited(
    limited: tuple[ServerProcess, httpx.Client],
) -> None:
    _, client = limited
    for _ in range(20):
        for path in ("/health", "/metrics"):
            response = client.get(path)
            assert response.status_code == 200
            assert "x-ratelimit-limit" not in response.headers
    # They did not use up the budget of API requests either.
    assert client.get("/api/v1/runs").headers["x-ratelimit-remaining"] == "4"
    for _ in range(4):
        client.get("/api/v1/runs")
    assert_limited(client.get("/api/v1/runs"))
    for _ in range(20):
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_the_limit_counts_every_api_endpoint_and_a_limited_write_stores_nothing(
    limited: tuple[ServerProcess, httpx.Client],
) -> None:
    server, client = limited
    stored = new_run()
    assert client.post("/api/v1/runs", json=stored).status_code == 201
    assert client.get(f"/api/v1/runs/{stored['event_id']}").status_code == 200
    assert client.get("/api/v1/metadata").status_code == 200
    assert client.patch(f"/api/v1/runs/{stored['event_id']}", json={"items_failed": 1}).is_success
    assert client.post("/api/v1/runs/batch", json=[new_run()]).status_code == 200
    refused = new_run()
    assert_limited(client.post("/api/v1/runs", json=refused))
    assert_limited(client.post("/api/v1/runs/batch", json=[new_run()]))
    assert stored_rows(server, [stored["event_id"]]) == 1
    assert stored_rows(server, [refused["event_id"]]) == 0


def test_docs_are_not_limited(limited: tuple[ServerProcess, httpx.Client]) -> None:
    _, client = limited
    for _ in range(6):
        assert client.get("/openapi.json").status_code == 200
    assert client.get("/api/v1/runs").headers["x-ratelimit-remaining"] == "4"


def test_rate_limit_is_off_by_default(api: httpx.Client) -> None:
    for _ in range(3):
        response = api.get("/api/v1/runs", params={"limit": 1})
        assert response.status_code == 200
        assert "x-ratelimit-limit" not in response.headers


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_the_bearer_scheme_name_is_case_insensitive(client: httpx.Client, scheme: str) -> None:
    run = new_run()
    response = client.post("/api/v1/runs", json=run, headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == 201
    assert client.get(f"/api/v1/runs/{run['event_id']}", headers=GOOD).status_code == 200
