"""Access control: API keys, their scopes, and the ASGI layer that checks them.

Off by default (the server then refuses non-loopback binds, see ``config.py``). With
``TELEMETRY_API_AUTH_ENABLED`` every ``/api/…`` request, ``/metrics`` (and anything below
it) and ``/version`` need ``Authorization: Bearer <key>``; ``/health``, ``/docs``,
``/redoc`` and ``/openapi.json`` stay public, and ``TELEMETRY_API_AUTH_PUBLIC_READS``
opens GET/HEAD again (the v3 guide's behaviour). The dashboard checks its own session
cookie (``dashboard/auth.py``), built on the same keys.

A key is ``TELEMETRY_API_AUTH_TOKEN`` (scope ``admin``) or a stored key
``lt_<prefix>_<secret>``: the database holds its ``prefix`` (to find the row) and the
SHA-256 of the whole key. A fast hash is enough here, unlike for passwords: the secret
is 256 random bits, so no dictionary or brute-force search over the hash can find it,
and a slow KDF would only cost time on every request. Every comparison of a secret is
``hmac.compare_digest``.

Lookups are cached for :data:`CACHE_SECONDS` (positive ones only); a revoke through this
process drops its cache entry at once. With several worker processes (PostgreSQL) the
other processes see a revocation within :data:`CACHE_SECONDS`; expiry is checked on
every request against the cached row, so it is exact everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.types import ASGIApp, Receive, Scope, Send

from local_telemetry.api.security import bearer_credential, send_json
from local_telemetry.storage.base import API_KEY_SCOPES, Store
from local_telemetry.timestamps import now_stored

T = TypeVar("T")
Reader = Callable[..., Awaitable[Any]]
"""``AppState.read``: runs a blocking store call on a reader thread."""

KEY_MARK = "lt_"
PREFIX_CHARS = 12
_KEY_FORM = re.compile(r"^lt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
CACHE_SECONDS = 5.0
"""How long a verified key is trusted without reading its row again."""
CACHE_MAX = 1024
MISS_SECONDS = 1.0
"""How long an unknown key prefix is remembered as unknown: a flood of made-up keys of
the right form costs one database read per prefix a second, not one per request."""
"""Most cached keys (the cache is emptied when full: it only saves reads)."""

PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
READ_METHODS = frozenset({"GET", "HEAD"})
# Writes that record runs and what belongs to them; every other write needs admin, so an
# endpoint added later is admin-only until it is classified here.
INGEST_WRITE_PREFIXES = ("/api/v1/runs", "/api/agent-runs", "/api/v1/import/", "/v1/traces")
# Reads that reveal credentials' metadata: admin only.
ADMIN_READ_PREFIXES = ("/api/v1/keys",)
ENV_TOKEN_NAME = "TELEMETRY_API_AUTH_TOKEN"  # noqa: S105  (a variable's name, no secret)


@dataclass(frozen=True)
class Principal:
    """Who a verified key belongs to: its name, scope and prefix (``None``: env token)."""

    name: str
    scope: str
    prefix: str | None
    key_id: int | None = None


def scope_allows(granted: str, needed: str) -> bool:
    """Whether a key of scope ``granted`` may do what needs ``needed`` (admin ⊃ ingest ⊃
    read)."""
    return API_KEY_SCOPES.index(granted) >= API_KEY_SCOPES.index(needed)


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256 hex of the whole key (see the module doc)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key ``lt_<prefix>_<secret>`` (256-bit secret) and its prefix."""
    prefix = secrets.token_hex(PREFIX_CHARS // 2)
    return f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_prefix(credential: str) -> str | None:
    """The prefix of a well-formed stored key, else ``None``."""
    match = _KEY_FORM.match(credential)
    return match.group(1) if match else None


def required_scope(method: str, path: str, public_reads: bool) -> str | None:
    """The scope a request needs, or ``None`` when it needs no key at all.

    Only the API, metrics and version are guarded here; dashboard pages check their own
    session. OPTIONS is let through: a CORS preflight carries no credentials, and an
    OPTIONS request reveals nothing.
    """
    if path in PUBLIC_PATHS or method == "OPTIONS":
        return None
    guarded = (
        path.startswith("/api/")
        or path in ("/metrics", "/version", "/v1/traces")  # /v1/traces: OTLP ingest
        or path.startswith("/metrics/")
    )
    if not guarded:
        return None
    if path.startswith(ADMIN_READ_PREFIXES):
        return "admin"
    if method in READ_METHODS:
        return None if public_reads else "read"
    if path.startswith(INGEST_WRITE_PREFIXES):
        return "ingest"
    return "admin"


def key_active(row: dict[str, Any], now: str | None = None) -> bool:
    """Whether a stored key is neither revoked nor expired (stored UTC forms compare as
    text)."""
    if row["revoked_at"] is not None:
        return False
    expires = row["expires_at"]
    return expires is None or expires > (now or now_stored())


class KeyRing:
    """Verifies presented keys: the env token, or stored keys through a short cache."""

    def __init__(self, store: Store, token: str | None, ttl: float = CACHE_SECONDS) -> None:
        self.store = store
        self._token = token.encode() if token else None
        self.ttl = ttl
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._epoch = 0  # bumped by forget(): a read begun before a revoke is not cached
        self._lock = threading.Lock()

    def env_token(self, credential: str) -> bool:
        """Whether ``credential`` is ``TELEMETRY_API_AUTH_TOKEN`` (constant time)."""
        return self._token is not None and hmac.compare_digest(credential.encode(), self._token)

    async def active_key(self, prefix: str, read: Reader) -> dict[str, Any] | None:
        """The stored, unrevoked and unexpired key with ``prefix`` (with its hash)."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(prefix)
            epoch = self._epoch
        if cached is not None and now - cached[0] < (self.ttl if cached[1] else MISS_SECONDS):
            row = cached[1]
        else:
            row = await read(self.store.find_api_key, prefix)
            if row is not None and not key_active(row):
                row = None
            with self._lock:
                if epoch == self._epoch:  # no revoke meanwhile: the row is still true
                    if len(self._cache) >= CACHE_MAX:
                        self._cache.clear()
                    self._cache[prefix] = (now, row)
        return row if row is not None and key_active(row) else None

    async def verify(self, credential: str, read: Reader) -> Principal | None:
        """Who ``credential`` belongs to, or ``None`` (unknown, revoked or expired)."""
        if self.env_token(credential):
            return Principal(ENV_TOKEN_NAME, "admin", None)
        prefix = key_prefix(credential)
        if prefix is None:
            return None
        row = await self.active_key(prefix, read)
        if row is None or not hmac.compare_digest(row["key_hash"], hash_key(credential)):
            return None
        return Principal(row["name"], row["scope"], prefix, row["id"])

    async def recognizes(self, credential: bytes, read: Reader) -> bool:
        """Whether a raw bearer value is a valid key (the rate limiter's question: only
        valid keys get a budget of their own; made-up ones count by address)."""
        return await self.verify(credential.decode("utf-8", "replace"), read) is not None

    def forget(self, prefix: str) -> None:
        """Drop ``prefix`` from the cache (after a create or revoke: effective at once in
        this process, also for lookups already under way)."""
        with self._lock:
            self._cache.pop(prefix, None)
            self._epoch += 1


class ApiAuth:
    """ASGI layer: 401 without a valid key, 403 when the key's scope is too small."""

    def __init__(self, app: ASGIApp, keys: KeyRing, read: Reader, public_reads: bool) -> None:
        self.app = app
        self.keys = keys
        self.read = read
        self.public_reads = public_reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request's key against the scope its method and path need."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = required_scope(scope["method"], scope["path"], self.public_reads)
        if needed is None:
            await self.app(scope, receive, send)
            return
        raw = bearer_credential(scope)
        # Header bytes as UTF-8, so a non-ASCII token matches what its owner typed.
        credential = raw.decode("utf-8", "replace") if raw is not None else None
        if credential is None:
            await send_json(
                send,
                401,
                "Missing authentication token: send 'Authorization: Bearer <API key or token>'",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        principal = await self.keys.verify(credential, self.read)
        if principal is None:
            await send_json(
                send,
                401,
                "Invalid authentication token: unknown, revoked or expired key",
                [(b"www-authenticate", b'Bearer error="invalid_token"')],
            )
            return
        if not scope_allows(principal.scope, needed):
            await send_json(
                send,
                403,
                f"This request needs an API key with the '{needed}' scope "
                f"(this key has '{principal.scope}')",
                [
                    (
                        b"www-authenticate",
                        f'Bearer error="insufficient_scope" scope="{needed}"'.encode(),
                    )
                ],
            )
            return
        await self.app(scope, receive, send)
