"""Access control attacked through a real server: every endpoint of the OpenAPI document
against every kind of key, revoked and expired keys, public paths, the dashboard.

Expected scopes are written out here (not imported from ``api/auth.py``): ``read`` may
GET the API, metrics and dashboard; ``ingest`` also records runs, events, QC and
imports; ``admin`` everything (alert rules, retention, maintenance, keys). An endpoint
added later shows up in the OpenAPI document and so in the matrix automatically.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from support import ServerProcess, StartServer, new_run, query

TOKEN = "hardening-admin-token"
AUTH_ENV = {
    "TELEMETRY_API_AUTH_ENABLED": "true",
    "TELEMETRY_API_AUTH_TOKEN": TOKEN,
    "TELEMETRY_ALERT_INTERVAL_SECONDS": "0",
}
SCOPES = ("read", "ingest", "admin")
RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
# Writes a key with the ingest scope may make (path templates of the OpenAPI document).
INGEST_WRITES = {
    ("POST", "/api/v1/runs"),
    ("POST", "/api/v1/runs/batch"),
    ("PATCH", "/api/v1/runs/{event_id}"),
    ("POST", "/api/v1/runs/{event_id}/associate-commit"),
    ("POST", "/api/v1/runs/{event_id}/events"),
    ("POST", "/api/v1/runs/{event_id}/qc"),
    ("POST", "/api/agent-runs"),
    ("POST", "/api/agent-runs/{run_id}/qc"),
    ("POST", "/api/v1/import/runs"),
    ("POST", "/v1/traces"),
}
PUBLIC = ("/health", "/docs", "/redoc", "/openapi.json")
KEY_FORM = re.compile(r"^lt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def needed_scope(method: str, path: str) -> str | None:
    """The scope an operation needs; ``None``: public."""
    if path in PUBLIC:
        return None
    if path.startswith("/api/v1/keys"):
        return "admin"
    if method in ("GET", "HEAD"):
        return "read"
    return "ingest" if (method, path) in INGEST_WRITES else "admin"


def create_key(
    server: ServerProcess, scope: str, name: str = "test", **extra: Any
) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/api/v1/keys",
        json={"name": name, "scope": scope, **extra},
        headers=bearer(TOKEN),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("auth-scopes") / "t.sqlite", AUTH_ENV)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def keys(server: ServerProcess) -> dict[str, str]:
    """One key per scope, plus the env token as ``token``."""
    found = {scope: create_key(server, scope, f"matrix-{scope}")["key"] for scope in SCOPES}
    return {**found, "token": TOKEN}


@pytest.fixture(scope="module")
def run(server: ServerProcess) -> dict[str, Any]:
    body = new_run()
    response = httpx.post(f"{server.url}/api/v1/runs", json=body, headers=bearer(TOKEN))
    assert response.status_code == 201
    return body


def operations(server: ServerProcess) -> list[tuple[str, str]]:
    document = httpx.get(f"{server.url}/openapi.json").json()
    found = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(found) >= 30, found  # the matrix is not vacuous
    return found


def concrete(path: str, run: dict[str, Any]) -> str:
    return (
        path.replace("{event_id}", run["event_id"])
        .replace("{run_id}", run["run_id"])
        .replace("{key_id}", "987654")  # unknown: a DELETE answers 404, revoking nothing
    )


def send(server: ServerProcess, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """A minimal request: writes carry ``{}`` (422 or harmless when allowed)."""
    body: Any = {} if method in ("POST", "PUT", "PATCH") else None
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=60, json=body)


@pytest.mark.parametrize("who", ["read", "ingest", "admin", "token"])
def test_each_scope_on_each_endpoint(
    server: ServerProcess, keys: dict[str, str], run: dict[str, Any], who: str
) -> None:
    granted = "admin" if who == "token" else who
    wrong: list[str] = []
    for method, template in operations(server):
        needed = needed_scope(method, template)
        response = send(server, method, concrete(template, run), bearer(keys[who]))
        allowed = needed is None or RANK[granted] >= RANK[needed]
        if allowed and response.status_code in (401, 403):
            wrong.append(f"{method} {template}: {response.status_code}, expected allowed")
        if not allowed:
            if response.status_code != 403:
                wrong.append(f"{method} {template}: {response.status_code}, expected 403")
            elif f"'{needed}'" not in response.json()["detail"]:
                wrong.append(f"{method} {template}: 403 detail does not name {needed!r}")
        if response.status_code >= 500:
            wrong.append(f"{method} {template}: {response.status_code}")
    assert wrong == []


def test_every_protected_endpoint_wants_a_key(server: ServerProcess, run: dict[str, Any]) -> None:
    wrong: list[str] = []
    for method, template in operations(server):
        if needed_scope(method, template) is None:
            continue
        for headers, challenge in (
            ({}, "Bearer"),
            (bearer("lt_0123456789ab_" + "x" * 43), 'Bearer error="invalid_token"'),
            (bearer(TOKEN + "x"), 'Bearer error="invalid_token"'),
            ({"Authorization": f"Basic {TOKEN}"}, "Bearer"),
        ):
            response = send(server, method, concrete(template, run), headers)
            if response.status_code != 401:
                wrong.append(f"{method} {template} {headers}: {response.status_code}")
            elif response.headers.get("www-authenticate") != challenge:
                wrong.append(f"{method} {template}: {response.headers.get('www-authenticate')}")
    assert wrong == []


@pytest.mark.parametrize("path", PUBLIC)
def test_public_paths_need_no_key(server: ServerProcess, path: str) -> None:
    response = httpx.get(f"{server.url}{path}")
    assert response.status_code == 200
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize("path", ["/metrics", "/metrics/prometheus", "/version", "/api/v1/nope"])
def test_metrics_version_and_unknown_api_paths_want_a_key(
    server: ServerProcess, keys: dict[str, str], path: str
) -> None:
    assert httpx.get(f"{server.url}{path}").status_code == 401
    assert httpx.get(f"{server.url}{path}", headers=bearer(keys["read"])).status_code != 401


def test_public_reads_open_gets_but_not_writes_or_keys(start_server: StartServer) -> None:
    server = start_server(**AUTH_ENV, TELEMETRY_API_AUTH_PUBLIC_READS="true")
    body = new_run()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/api/v1/runs", json=body).status_code == 401
        assert client.post("/api/v1/runs", json=body, headers=bearer(TOKEN)).status_code == 201
        for path in ("/api/v1/runs", f"/api/v1/runs/{body['event_id']}", "/metrics", "/version"):
            assert client.get(path).status_code == 200, path
        assert client.head("/api/v1/runs").status_code != 401
        assert client.patch(f"/api/v1/runs/{body['event_id']}", json={}).status_code == 401
        assert client.get("/api/v1/keys").status_code == 401  # key listings stay admin-only


def test_a_revoked_key_is_refused_at_once(server: ServerProcess) -> None:
    created = create_key(server, "ingest", "to-revoke")
    headers = bearer(created["key"])
    assert httpx.get(f"{server.url}/api/v1/runs", headers=headers).status_code == 200  # cached
    revoke = httpx.delete(f"{server.url}/api/v1/keys/{created['id']}", headers=bearer(TOKEN))
    assert revoke.status_code == 200
    assert revoke.json()["revoked_at"] is not None
    assert revoke.json()["active"] is False
    response = httpx.get(f"{server.url}/api/v1/runs", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert (
        httpx.post(f"{server.url}/api/v1/runs", json=new_run(), headers=headers).status_code == 401
    )


def test_revoking_an_unknown_key_is_404(server: ServerProcess) -> None:
    for key_id, status in (("424242", 404), ("0", 422), ("x", 422), (str(2**63), 422)):
        response = httpx.delete(f"{server.url}/api/v1/keys/{key_id}", headers=bearer(TOKEN))
        assert response.status_code == status, key_id


def test_an_expired_key_is_refused(server: ServerProcess) -> None:
    before = datetime.now(UTC)
    created = create_key(server, "read", "short-lived", expires_in="2s")
    expires = datetime.fromisoformat(created["expires_at"])
    assert before + timedelta(seconds=1) <= expires <= datetime.now(UTC) + timedelta(seconds=3)
    headers = bearer(created["key"])
    deadline = time.monotonic() + 20  # a "did not hang" guard, not a timing assertion
    while httpx.get(f"{server.url}/api/v1/runs", headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "the expired key is still accepted"
        time.sleep(0.2)
    assert datetime.now(UTC) >= expires  # refused because it expired, not before
    (listed,) = [
        k
        for k in httpx.get(f"{server.url}/api/v1/keys", headers=bearer(TOKEN)).json()
        if k["id"] == created["id"]
    ]
    assert listed["active"] is False
    assert listed["revoked_at"] is None
    longer = create_key(server, "read", "long-lived", expires_in="1h")
    assert httpx.get(f"{server.url}/api/v1/runs", headers=bearer(longer["key"])).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "x"},
        {"name": "x", "scope": "root"},
        {"name": "", "scope": "read"},
        {"name": "a\x00b", "scope": "read"},
        {"name": "x" * 201, "scope": "read"},
        {"name": "x", "scope": "read", "expires_in": "30"},
        {"name": "x", "scope": "read", "expires_in": "0d"},
        {"name": "x", "scope": "read", "expires_in": 30},
        {"name": "x", "scope": "read", "extra": 1},
        [],
    ],
)
def test_bad_key_requests_are_422_and_store_nothing(server: ServerProcess, body: Any) -> None:
    before = query(server, "SELECT count(*) FROM api_keys")[0][0]
    response = httpx.post(f"{server.url}/api/v1/keys", json=body, headers=bearer(TOKEN))
    assert response.status_code == 422, response.text
    assert query(server, "SELECT count(*) FROM api_keys")[0][0] == before


def test_a_key_is_shown_once_and_stored_only_as_a_hash(server: ServerProcess) -> None:
    created = create_key(server, "ingest", "shown-once")
    key = created["key"]
    assert KEY_FORM.match(key)
    assert key.startswith(f"lt_{created['prefix']}_")
    listing = httpx.get(f"{server.url}/api/v1/keys", headers=bearer(TOKEN))
    assert key not in listing.text
    assert key.split("_", 2)[2] not in listing.text
    for item in listing.json():
        assert "key" not in item
        assert "key_hash" not in item
    rows = query(server, "SELECT * FROM api_keys WHERE id = ?", (created["id"],))
    assert len(rows) == 1
    assert key not in [str(value) for value in rows[0]]
    stored = query(server, "SELECT key_hash FROM api_keys WHERE id = ?", (created["id"],))
    assert stored[0][0] == hashlib.sha256(key.encode()).hexdigest()
    for file in server.db_path.parent.glob(f"{server.db_path.name}*"):
        assert key.encode() not in file.read_bytes(), file
    assert key not in server.log()


# ----- the dashboard -----


@contextmanager
def sign_in(server: ServerProcess, credential: str) -> Iterator[httpx.Client]:
    """A client signed in to the dashboard with ``credential``."""
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
        login = client.get("/login")
        csrf = login.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        data = {"token": credential, "next": "/", "csrf_token": csrf}
        response = client.post("/login", data=data)
        assert response.status_code == 303, response.text[:300]
        yield client


def post_review(client: httpx.Client, event_id: str) -> httpx.Response:
    # Double submit: the form's token is the value of the browser's lt_csrf cookie.
    data = {"score": "4", "notes": "ok", "csrf_token": client.cookies["lt_csrf"]}
    return client.post(f"/runs/{event_id}/qc", data=data)


def test_dashboard_sign_in_with_a_read_key_shows_pages_but_refuses_reviews(
    server: ServerProcess, run: dict[str, Any]
) -> None:
    created = create_key(server, "read", "dashboard-reader")
    with sign_in(server, created["key"]) as client:
        assert client.get("/").status_code == 200
        assert client.get(f"/runs/{run['event_id']}").status_code == 200
        refused = post_review(client, run["event_id"])
        assert refused.status_code == 403
        assert "ingest" in refused.text
    qc = httpx.get(f"{server.url}/api/v1/runs/{run['event_id']}/qc", headers=bearer(TOKEN))
    assert all(review["notes"] != "ok" for review in qc.json())


def test_dashboard_reviews_need_ingest(server: ServerProcess, run: dict[str, Any]) -> None:
    created = create_key(server, "ingest", "dashboard-reviewer")
    with sign_in(server, created["key"]) as client:
        assert post_review(client, run["event_id"]).status_code == 303


def test_revoking_a_key_ends_its_dashboard_sessions(server: ServerProcess) -> None:
    created = create_key(server, "admin", "dashboard-admin")
    with sign_in(server, created["key"]) as client:
        assert client.get("/alerts").status_code == 200
        revoke = httpx.delete(f"{server.url}/api/v1/keys/{created['id']}", headers=bearer(TOKEN))
        assert revoke.status_code == 200
        response = client.get("/alerts")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")


def test_dashboard_sign_in_refuses_revoked_and_unknown_keys(server: ServerProcess) -> None:
    created = create_key(server, "read", "revoked-before-sign-in")
    httpx.delete(f"{server.url}/api/v1/keys/{created['id']}", headers=bearer(TOKEN))
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        login = client.get("/login")
        csrf = login.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        for credential in (created["key"], "lt_0123456789ab_" + "y" * 43, "nope"):
            data = {"token": credential, "next": "/", "csrf_token": csrf}
            response = client.post("/login", data=data)
            assert response.status_code == 401
            assert "lt_session" not in response.headers.get("set-cookie", "")


def test_a_forged_session_holder_is_refused(server: ServerProcess, keys: dict[str, str]) -> None:
    """A session's signature covers its holder: swapping in another key's prefix fails."""
    with sign_in(server, keys["read"]) as client:
        value = client.cookies["lt_session"]
        expiry, nonce, _holder, signature = value.split(".")
        other = keys["admin"].split("_")[1]
        client.cookies.set("lt_session", f"{expiry}.{nonce}.{other}.{signature}")
        assert client.get("/").status_code == 303
        client.cookies.set("lt_session", f"{expiry}.{nonce}.token.{signature}")
        assert client.get("/").status_code == 303


@pytest.mark.parametrize(
    "cookie",
    [
        "\u00b2\u00b2\u00b2.0123456789abcdef0123456789abcdef.token." + "0" * 64,
        "9" * 5000 + ".0123456789abcdef0123456789abcdef.token." + "0" * 64,
        "99999999999.n.'; DROP TABLE api_keys; --." + "0" * 64,
        "99999999999.0123456789abcdef0123456789abcdef.%%%%%%%%%%%%." + "0" * 64,
        "a.b.c",
    ],
    ids=["superscript-digits", "5000-digit-expiry", "sql-holder", "like-holder", "short"],
)
def test_a_crafted_session_cookie_signs_nobody_in_and_never_fails(
    server: ServerProcess, cookie: str
) -> None:
    # Raw header bytes: Starlette reads cookies as latin-1, so b"\xb2" arrives as "²".
    headers = {"cookie": b"lt_session=" + cookie.encode("latin-1")}
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
        for path in ("/", "/login"):
            response = client.get(path, headers=headers)
            assert response.status_code in (200, 303), (path, response.text[:300])
        assert client.get("/", headers=headers).headers["location"].startswith("/login")


def test_reading_the_database_is_not_enough_to_forge_a_session(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    """Key sessions are signed under the key's stored hash and the server's token: the
    hash alone (what a database reader or a backup holds) signs nothing."""
    from local_telemetry.dashboard.auth import new_session

    prefix = keys["admin"].split("_")[1]
    (key_hash,) = query(server, "SELECT key_hash FROM api_keys WHERE prefix = ?", [prefix])[0]
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
        client.cookies.set("lt_session", new_session(str(key_hash), prefix))
        assert client.get("/").status_code == 303


@pytest.mark.parametrize(
    "value",
    [
        b"Bearer \xff\xfe",
        b"Bearer lt_0123456789ab_" + b"\xe9" * 43,
        b"Bearer " + b"a" * 8000,
        b"Bearer lt_%_" + b"%" * 43,
        b"Bearer",
    ],
    ids=["latin-1", "non-ascii-key", "8k", "like-pattern", "empty"],
)
def test_garbage_credentials_are_401_never_5xx(server: ServerProcess, value: bytes) -> None:
    headers = [(b"authorization", value)]
    response = httpx.get(f"{server.url}/api/v1/runs", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
