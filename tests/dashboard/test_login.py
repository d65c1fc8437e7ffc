"""Sign-in when auth is on: pages redirect to /login, the session cookie, CSRF."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page

from dashboard_support import problems, screenshot
from support import ServerProcess

TOKEN = "dashboard-secret-token"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path = tmp_path_factory.mktemp("dash-auth") / "telemetry.sqlite"
    server = ServerProcess(
        path, {"TELEMETRY_API_AUTH_ENABLED": "true", "TELEMETRY_API_AUTH_TOKEN": TOKEN}
    )
    server.start()
    yield server
    server.stop()


def test_pages_redirect_to_login_without_showing_data(auth_server: ServerProcess) -> None:
    with httpx.Client(base_url=auth_server.url, follow_redirects=False) as client:
        for path in ("/", "/runs", "/alerts", "/runs/some-run", "/agents/a"):
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next=")
        htmx = client.get("/runs", headers={"HX-Request": "true"})
        assert htmx.status_code == 401
        assert htmx.headers["hx-redirect"].startswith("/login")


def test_login_page_has_a_strict_csp_and_a_csrf_cookie(auth_server: ServerProcess) -> None:
    response = httpx.get(f"{auth_server.url}/login")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    cookie = response.headers["set-cookie"].lower()
    assert "lt_csrf=" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


def test_login_without_the_csrf_token_is_refused(auth_server: ServerProcess) -> None:
    with httpx.Client(base_url=auth_server.url, follow_redirects=False) as client:
        client.get("/login")
        response = client.post("/login", data={"token": TOKEN, "next": "/"})
        assert response.status_code == 403
        assert "lt_session" not in response.headers.get("set-cookie", "")


def test_signing_in_in_the_browser(auth_server: ServerProcess, page: Page) -> None:
    page.goto(f"{auth_server.url}/alerts")
    assert page.url.startswith(f"{auth_server.url}/login")
    screenshot(page, "login")
    page.fill("#token", "wrong")
    page.click("button[type=submit] >> text=Sign in")
    assert page.locator("[role=alert]").inner_text() == "That token is not valid."
    page.fill("#token", TOKEN)
    page.click("button[type=submit] >> text=Sign in")
    page.wait_for_url(f"{auth_server.url}/alerts")
    session = [c for c in page.context.cookies() if c["name"] == "lt_session"]
    assert session
    assert session[0]["httpOnly"]
    assert session[0]["sameSite"] == "Strict"
    page.click("text=Sign out")
    page.wait_for_url(f"{auth_server.url}/login")
    page.goto(f"{auth_server.url}/")
    assert page.url.startswith(f"{auth_server.url}/login")
    assert problems(page) == []


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "\\\\evil"])
def test_next_never_leaves_the_site(auth_server: ServerProcess, target: str) -> None:
    with httpx.Client(base_url=auth_server.url, follow_redirects=False) as client:
        login = client.get("/login")
        token = login.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        response = client.post("/login", data={"token": TOKEN, "next": target, "csrf_token": token})
        assert response.status_code == 303
        assert response.headers["location"] == "/"
