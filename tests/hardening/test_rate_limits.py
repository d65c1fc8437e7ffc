"""Rate limits per API key or client address, trusted proxies and the limit headers,
attacked through real server processes.

Different client addresses come from binding the client socket to other loopback
addresses (all of 127.0.0.0/8 reaches a server listening on 127.0.0.1 on Linux).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_support import cli
from support import ServerProcess, StartServer, new_run

RPM = 5
ADMIN = "h4-admin-token"
LIMITED = {"TELEMETRY_RATE_LIMIT_ENABLED": "true", "TELEMETRY_RATE_LIMIT_RPM": str(RPM)}
AUTH = {"TELEMETRY_API_AUTH_ENABLED": "true", "TELEMETRY_API_AUTH_TOKEN": ADMIN}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def client_from(server: ServerProcess, address: str = "127.0.0.1") -> httpx.Client:
    """A client whose connections come from ``address`` (a loopback address)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, timeout=30, transport=transport)


@pytest.fixture
def local(start_server: StartServer) -> Iterator[tuple[ServerProcess, httpx.Client]]:
    """A fresh server with auth off, limited to RPM API requests a minute, and a client."""
    server = start_server(**LIMITED)
    with client_from(server) as http:
        yield server, http


@pytest.fixture
def keyed(start_server: StartServer) -> Iterator[tuple[ServerProcess, httpx.Client]]:
    """A fresh server with auth on, limited to RPM requests a minute per key."""
    server = start_server(**LIMITED, **AUTH)
    with client_from(server) as http:
        yield server, http


def assert_limit_headers(response: httpx.Response, remaining: int | None = None) -> None:
    assert response.headers["x-ratelimit-limit"] == str(RPM), response.headers
    left = int(response.headers["x-ratelimit-remaining"])
    assert 0 <= left < RPM
    if remaining is not None:
        assert left == remaining


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text[:300]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after  # whole seconds, never a date or a fraction
    assert 1 <= int(retry_after) <= 60 // RPM
    assert_limit_headers(response, remaining=0)
    assert "rate limit" in response.json()["detail"].lower()


def spend(client: httpx.Client, count: int, **request: Any) -> list[int]:
    """Send ``count`` GET /api/v1/kpis (or ``request``); their statuses."""
    request = {"method": "GET", "url": "/api/v1/kpis", **request}
    return [client.request(**request).status_code for _ in range(count)]


# ----- keyed by API key -----


def test_two_keys_have_separate_budgets(keyed: tuple[ServerProcess, httpx.Client]) -> None:
    _, client = keyed
    created = client.post(
        "/api/v1/keys", json={"name": "b", "scope": "read"}, headers=bearer(ADMIN)
    )
    assert created.status_code == 201, created.text[:300]
    key_b = created.json()["key"]
    assert_limit_headers(created, remaining=RPM - 1)
    assert spend(client, RPM - 1, headers=bearer(ADMIN)) == [200] * (RPM - 1)
    assert_limited(client.get("/api/v1/kpis", headers=bearer(ADMIN)))
    # Same address, other key: a budget of its own, untouched by the admin key's.
    fresh = client.get("/api/v1/kpis", headers=bearer(key_b))
    assert fresh.status_code == 200, fresh.text[:300]
    assert_limit_headers(fresh, remaining=RPM - 1)
    # And requests without a key are counted by address, apart from both keys.
    anonymous = client.get("/api/v1/kpis")
    assert anonymous.status_code == 401  # reads need a key when auth is on
    assert_limit_headers(anonymous, remaining=RPM - 1)
    assert_limited(client.get("/api/v1/kpis", headers=bearer(ADMIN)))


def test_guessing_keys_is_limited_per_address(keyed: tuple[ServerProcess, httpx.Client]) -> None:
    server, client = keyed
    # A made-up key gets no budget of its own (it counts against the address), and every
    # 401 also spends the address's failed-auth budget: once that is empty, no key gets
    # through from there, not even a valid one.
    for sent in range(1, RPM + 1):
        response = client.get("/api/v1/kpis", headers=bearer(secrets.token_urlsafe(16)))
        assert response.status_code == 401
        assert_limit_headers(response, remaining=RPM - sent)
    assert_limited(client.get("/api/v1/kpis", headers=bearer(secrets.token_urlsafe(16))))
    assert_limited(client.get("/api/v1/kpis", headers=bearer(ADMIN)))
    # Another address has not guessed anything.
    with client_from(server, "127.0.0.2") as other:
        assert other.get("/api/v1/kpis", headers=bearer(ADMIN)).status_code == 200


def test_made_up_keys_on_requests_auth_lets_through_share_the_address_budget(
    start_server: StartServer,
) -> None:
    """Public reads (and OPTIONS) are never checked by auth, so no 401 spends the
    failed-auth budget: a new made-up key per request must still not buy a fresh budget,
    nor fill the limiter's memory."""
    server = start_server(**LIMITED, **AUTH, TELEMETRY_API_AUTH_PUBLIC_READS="true")
    with client_from(server) as client:
        made_up = [
            bearer(f"lt_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)[:43]}")
            for _ in range(RPM)
        ]
        assert [client.get("/api/v1/kpis", headers=key).status_code for key in made_up] == [
            200
        ] * RPM
        assert_limited(client.get("/api/v1/kpis", headers=bearer(secrets.token_urlsafe(16))))
        assert_limited(client.get("/api/v1/kpis"))
        # A valid key still has a budget of its own.
        assert client.get("/api/v1/kpis", headers=bearer(ADMIN)).status_code == 200


@pytest.mark.parametrize("path", ["/metrics", "/version", "/api/v1/kpis"])
def test_guessing_keys_on_unlimited_paths_is_limited_too(
    keyed: tuple[ServerProcess, httpx.Client], path: str
) -> None:
    _, client = keyed
    # /metrics is not rate limited (v3 guide), but it checks keys: guesses there count.
    for _ in range(RPM):
        assert client.get(path, headers=bearer(secrets.token_urlsafe(16))).status_code == 401
    assert_limited(client.get("/metrics", headers=bearer(secrets.token_urlsafe(16))))
    assert_limited(client.get("/api/v1/kpis", headers=bearer(ADMIN)))
    # Without a key nothing is guessed: /metrics still answers (401, no budget spent).
    assert client.get("/metrics").status_code == 401


def test_failed_dashboard_sign_ins_count_as_guesses(
    keyed: tuple[ServerProcess, httpx.Client],
) -> None:
    _, client = keyed
    page = client.get("/login")
    assert page.status_code == 200
    token = client.cookies.get("lt_csrf") or ""
    statuses = []
    for _ in range(RPM + 1):
        form = {"token": secrets.token_urlsafe(16), "csrf_token": token}
        statuses.append(client.post("/login", data=form).status_code)
    assert statuses[:RPM] == [401] * RPM, statuses
    assert_limited(client.post("/login", data={"token": ADMIN, "csrf_token": token}))


# ----- keyed by client address -----


def test_clients_without_auth_are_keyed_by_address(
    local: tuple[ServerProcess, httpx.Client],
) -> None:
    server, client = local
    assert spend(client, RPM) == [200] * RPM
    assert_limited(client.get("/api/v1/kpis"))
    # With auth off a bearer credential proves nothing: a new one gives no new budget.
    assert_limited(client.get("/api/v1/kpis", headers=bearer(secrets.token_urlsafe(16))))
    with client_from(server, "127.0.0.2") as other:
        response = other.get("/api/v1/kpis")
        assert response.status_code == 200
        assert_limit_headers(response, remaining=RPM - 1)


def test_forwarded_for_is_ignored_without_trusted_proxies(
    local: tuple[ServerProcess, httpx.Client],
) -> None:
    _, client = local
    for index in range(RPM):
        response = client.get("/api/v1/kpis", headers={"X-Forwarded-For": f"10.0.0.{index}"})
        assert response.status_code == 200
    # Every X-Forwarded-For value shared the peer's (127.0.0.1) budget.
    assert_limited(client.get("/api/v1/kpis", headers={"X-Forwarded-For": "10.9.9.9"}))
    assert_limited(client.get("/api/v1/kpis"))


@pytest.fixture
def proxied(start_server: StartServer) -> Iterator[tuple[ServerProcess, httpx.Client]]:
    """A fresh limited server behind a trusted proxy at 127.0.0.1."""
    server = start_server(**LIMITED, TELEMETRY_TRUSTED_PROXIES="127.0.0.1")
    with client_from(server) as http:
        yield server, http


def test_a_trusted_proxy_forwards_separate_budgets(
    proxied: tuple[ServerProcess, httpx.Client],
) -> None:
    _, client = proxied
    first = {"X-Forwarded-For": "10.0.0.1"}
    assert spend(client, RPM, headers=first) == [200] * RPM
    assert_limited(client.get("/api/v1/kpis", headers=first))
    second = client.get("/api/v1/kpis", headers={"X-Forwarded-For": "10.0.0.2"})
    assert second.status_code == 200
    assert_limit_headers(second, remaining=RPM - 1)
    # The proxy's own requests (no X-Forwarded-For) are its own address's.
    assert client.get("/api/v1/kpis").status_code == 200


def test_a_spoofed_left_most_entry_gives_no_fresh_budget(
    proxied: tuple[ServerProcess, httpx.Client],
) -> None:
    _, client = proxied
    # The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the real 5.6.7.8.
    assert spend(client, RPM, headers={"X-Forwarded-For": "5.6.7.8"}) == [200] * RPM
    for spoofed in ("1.2.3.4, 5.6.7.8", "9.9.9.9,5.6.7.8", "127.0.0.1, 5.6.7.8"):
        assert_limited(client.get("/api/v1/kpis", headers={"X-Forwarded-For": spoofed}))
    # Entries right of the client that are trusted proxies themselves are skipped.
    chained = {"X-Forwarded-For": "1.2.3.4, 5.6.7.8, 127.0.0.1"}
    assert_limited(client.get("/api/v1/kpis", headers=chained))


def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    proxied: tuple[ServerProcess, httpx.Client],
) -> None:
    server, _ = proxied
    with client_from(server, "127.0.0.3") as untrusted:
        for index in range(RPM):
            headers = {"X-Forwarded-For": f"10.1.0.{index}"}
            assert untrusted.get("/api/v1/kpis", headers=headers).status_code == 200
        assert_limited(untrusted.get("/api/v1/kpis", headers={"X-Forwarded-For": "10.1.1.1"}))


# ----- the headers -----


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/v1/runs", "run", 201),  # fast path
        ("POST", "/api/v1/runs", {"agent_name": "x"}, 422),  # fast path, refused
        ("GET", "/api/v1/runs/no-such-run", None, 404),  # fast path
        ("GET", "/api/v1/kpis", None, 200),  # FastAPI route
        ("GET", "/api/v1/kpis", {"from": "yesterday"}, 422),  # FastAPI, bad query
        ("GET", "/api/v1/no-such-endpoint", None, 404),  # FastAPI router
    ],
    ids=["fast-201", "fast-422", "fast-404", "fastapi-200", "fastapi-422", "fastapi-404"],
)
def test_limit_headers_on_every_answer_then_429(
    local: tuple[ServerProcess, httpx.Client], method: str, path: str, body: Any, status: int
) -> None:
    _, client = local

    def send() -> httpx.Response:
        if method == "POST":
            return client.post(path, json=new_run() if body == "run" else body)
        return client.get(path, params=body)

    for used in range(1, RPM + 1):
        response = send()
        assert response.status_code == status, response.text[:300]
        assert_limit_headers(response, remaining=RPM - used)
    assert_limited(send())


def test_a_limited_write_stores_nothing(local: tuple[ServerProcess, httpx.Client]) -> None:
    _, client = local
    spend(client, RPM)
    refused = new_run()
    assert_limited(client.post("/api/v1/runs", json=refused))
    with client_from(local[0], "127.0.0.2") as other:
        assert other.get(f"/api/v1/runs/{refused['event_id']}").status_code == 404


def test_health_metrics_and_docs_stay_unlimited(
    local: tuple[ServerProcess, httpx.Client],
) -> None:
    _, client = local
    spend(client, RPM)
    for path in ("/health", "/metrics", "/openapi.json", "/docs", "/redoc"):
        for _ in range(RPM + 1):
            response = client.get(path)
            assert response.status_code == 200, path
            assert "x-ratelimit-limit" not in response.headers


@pytest.mark.parametrize("proxies", ["proxy.example.com", "10.0.0.0/33", "127.0.0.1;10.0.0.1"])
def test_a_bad_trusted_proxy_list_refuses_to_start(tmp_path: Path, proxies: str) -> None:
    db = tmp_path / "telemetry.sqlite"
    result = cli("serve", TELEMETRY_TRUSTED_PROXIES=proxies, TELEMETRY_DB_PATH=str(db))
    assert result.returncode != 0
    assert "TELEMETRY_TRUSTED_PROXIES" in result.stderr
    assert "Traceback" not in result.stderr
