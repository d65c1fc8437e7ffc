"""Dashboard sign-in and CSRF protection.

When ``TELEMETRY_API_AUTH_ENABLED`` is on, every dashboard page needs a session: a
request without one is redirected to ``/login`` (htmx requests get 401 with an
``HX-Redirect``), and nothing stored is rendered before. ``/login`` takes the API token
(``TELEMETRY_API_AUTH_TOKEN``) or any active API key (every scope includes ``read``) and
sets ``lt_session``: HttpOnly, SameSite=Strict, ``expiry.nonce.holder.signature``, where
``holder`` is the key's public prefix (``token`` for the API token) and the signature is
HMAC-SHA256 under a key derived from the stored key's hash (from the token for
``token``). So sessions survive restarts, and a session ends when its key is revoked or
expires (checked on every request, through the same short cache as API requests) or
when the token changes. Pages are reads; posting a form that stores something (the QC
review) needs a key with the ``ingest`` or ``admin`` scope (403 otherwise). Forms (QC
review, sign-in, sign-out) carry a CSRF token that must equal the browser's ``lt_csrf``
cookie (double submit; the cookie is HttpOnly and
SameSite=Strict), and POSTs whose ``Origin`` names another host are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from local_telemetry.api.auth import (
    ENV_TOKEN_NAME,
    READ_METHODS,
    KeyRing,
    Principal,
    scope_allows,
)
from local_telemetry.api.deps import state
from local_telemetry.dashboard.web import read_form, render

SESSION_COOKIE = "lt_session"
CSRF_COOKIE = "lt_csrf"
SESSION_SECONDS = 12 * 3600
CookieSetter = Callable[[Response], None]


class LoginRequired(Exception):
    """The page needs a session; the handler redirects to ``/login``."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class CsrfRejected(Exception):
    """A form came without the right CSRF token (or from another origin): 403."""


ENV_HOLDER = "token"
"""The ``holder`` of a session opened with ``TELEMETRY_API_AUTH_TOKEN``."""


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"local-telemetry dashboard session\x00" + secret.encode()).digest()


def _sign(secret: str, payload: str) -> str:
    return hmac.new(_key(secret), payload.encode(), hashlib.sha256).hexdigest()


def new_session(secret: str, holder: str = ENV_HOLDER, now: float | None = None) -> str:
    """A session cookie value of ``holder`` valid for ``SESSION_SECONDS``, signed under
    ``secret`` (the API token, or the hash of the stored key ``holder``)."""
    expiry = int((now if now is not None else time.time()) + SESSION_SECONDS)
    payload = f"{expiry}.{secrets.token_hex(16)}.{holder}"
    return f"{payload}.{_sign(secret, payload)}"


_SESSION_FORM = re.compile(
    rf"^([0-9]{{1,12}})\.[0-9a-f]{{32}}\.({ENV_HOLDER}|[0-9a-f]{{12}})\.[0-9a-f]{{64}}$"
)


def session_holder(value: str | None, now: float | None = None) -> str | None:
    """The ``holder`` of an unexpired, well-formed session value (not yet verified).

    The whole form is checked first (a cookie is anyone's input), so nothing that is not
    ours reaches ``int()`` or a key lookup."""
    match = _SESSION_FORM.match(value or "")
    if match is None or int(match.group(1)) < (now if now is not None else time.time()):
        return None
    return match.group(2)


def key_session_secret(token: str | None, key_hash: str) -> str:
    """What a key's sessions are signed under: its stored hash AND the server's API
    token, so someone who can read the database (or a backup) cannot forge one."""
    return f"{token or ''}\x00{key_hash}"


def session_valid(secret: str, value: str | None, now: float | None = None) -> bool:
    """Whether ``value`` is an unexpired session signed under ``secret``."""
    if session_holder(value, now) is None:
        return False
    assert value is not None
    payload, _, signature = value.rpartition(".")
    return hmac.compare_digest(signature, _sign(secret, payload))


async def session_principal(request: Request) -> Principal | None:
    """Who the request's session belongs to, if it is valid and its key still active."""
    value = request.cookies.get(SESSION_COOKIE)
    holder = session_holder(value)
    if holder is None:
        return None
    settings = state(request).settings
    keys: KeyRing = request.app.state.key_ring
    if holder == ENV_HOLDER:
        token = settings.api_auth_token
        if not token or not session_valid(token, value):
            return None
        return Principal(ENV_TOKEN_NAME, "admin", None)
    row = await keys.active_key(holder, state(request).read)
    secret = key_session_secret(settings.api_auth_token, row["key_hash"]) if row else ""
    if row is None or not session_valid(secret, value):
        return None
    return Principal(row["name"], row["scope"], holder, row["id"])


def _cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def csrf_token(request: Request) -> tuple[str, CookieSetter | None]:
    """This browser's CSRF token, and a setter for its cookie when it has none yet."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if len(existing) == 43 and existing.replace("-", "").replace("_", "").isalnum():
        return existing, None
    token = secrets.token_urlsafe(32)
    return token, lambda response: _cookie(response, request, CSRF_COOKIE, token, 86400 * 30)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not sent: the double-submit token still protects the form
        return True
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def check_csrf(request: Request, form: dict[str, str]) -> None:
    """Raise :class:`CsrfRejected` unless the form's token matches the cookie and the
    request does not come from another origin."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get("csrf_token", "")
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise CsrfRejected
    if not _same_origin(request):
        raise CsrfRejected


async def signed_in(request: Request) -> bool:
    """Whether the request may see dashboard pages (always, when auth is off)."""
    if not state(request).settings.api_auth_enabled:
        return True
    return await session_principal(request) is not None


async def require_login(request: Request) -> None:
    """Dependency of every dashboard page: :class:`LoginRequired` without a session;
    403 when a form that stores something is posted with a ``read``-scope session."""
    if not state(request).settings.api_auth_enabled:
        return
    principal = await session_principal(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    if request.method not in READ_METHODS and not scope_allows(principal.scope, "ingest"):
        raise HTTPException(
            403, f"Storing needs an API key with the 'ingest' scope (yours has '{principal.scope}')"
        )


def safe_next(value: str | None) -> str:
    """A local path to go to after sign-in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def login_redirect(request: Request, exc: LoginRequired) -> Response:
    """The answer to :class:`LoginRequired`: 303 to ``/login`` (htmx: 401 + HX-Redirect)."""
    location = "/login?" + urlencode({"next": safe_next(exc.next_url)})
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


router = APIRouter(include_in_schema=False)


@router.get("/login")
async def login_page(request: Request) -> Response:
    """The sign-in form (straight to the dashboard when auth is off or signed in)."""
    next_url = safe_next(request.query_params.get("next"))
    if await signed_in(request):
        return RedirectResponse(next_url, status_code=303)
    return render(request, "login.html", {"next_url": next_url, "error": None})


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the API token; on success set the session cookie and go on."""
    form = await read_form(request)
    next_url = safe_next(form.get("next"))
    try:
        check_csrf(request, form)
    except CsrfRejected:
        context = {"next_url": next_url, "error": "The form expired. Please sign in again."}
        return render(request, "login.html", context, status_code=403)
    if not state(request).settings.api_auth_enabled:
        return RedirectResponse(next_url, status_code=303)
    session = await _session_for(request, form.get("token", "").strip())
    if session is None:
        context = {"next_url": next_url, "error": "That token is not valid."}
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse(next_url, status_code=303)
    _cookie(response, request, SESSION_COOKIE, session, SESSION_SECONDS)
    return response


async def _session_for(request: Request, credential: str) -> str | None:
    """A new session for the API token or an active API key, else ``None``."""
    keys: KeyRing = request.app.state.key_ring
    if not credential:
        return None
    principal = await keys.verify(credential, state(request).read)
    if principal is None:
        return None
    if principal.prefix is None:  # the API token
        return new_session(credential)
    row = await keys.active_key(principal.prefix, state(request).read)
    if row is None:
        return None
    token = state(request).settings.api_auth_token
    return new_session(key_session_secret(token, row["key_hash"]), principal.prefix)


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (CSRF-checked) and go to the sign-in page."""
    form = await read_form(request)
    try:
        check_csrf(request, form)
    except CsrfRejected:
        return Response(
            "Forbidden: CSRF token missing or wrong", status_code=403, media_type="text/plain"
        )
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
