"""Optional bearer-token auth and per-client rate limiting, as ASGI middleware.

As in the v3 guide: auth (``TELEMETRY_API_AUTH_ENABLED``) guards the write endpoints
(POST/PATCH/PUT/DELETE under ``/api/``); reads stay open. Rate limiting
(``TELEMETRY_RATE_LIMIT_ENABLED``) covers every API endpoint except ``/health``,
``/metrics`` and the docs. Limits are counted per client address in this process.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
RATE_LIMIT_EXEMPT = frozenset({"/health", "/metrics", "/docs", "/redoc", "/openapi.json"})


async def _send_json(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BearerAuth:
    """Reject write requests without ``Authorization: Bearer <token>`` (401)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the token of write requests to ``/api/``; pass everything else on."""
        if (
            scope["type"] == "http"
            and scope["method"] in WRITE_METHODS
            and scope["path"].startswith("/api/")
        ):
            supplied = b""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    supplied = value
                    break
            scheme, _, credentials = supplied.partition(b" ")
            # The scheme name is case-insensitive (RFC 7235); the token is not.
            if scheme.lower() != b"bearer" or not hmac.compare_digest(
                credentials.strip(), self._token
            ):
                await _send_json(
                    send,
                    401,
                    "Invalid or missing authentication token",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        await self.app(scope, receive, send)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token bucket per client address: ``rpm`` requests a minute, refilled smoothly."""

    def __init__(self, app: ASGIApp, rpm: int) -> None:
        self.app = app
        self.rpm = rpm
        self._rate = rpm / 60.0
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._last_prune = time.monotonic()

    def _take(self, client: str) -> tuple[bool, int, float]:
        """Take one token; return (allowed, tokens left, seconds until the next token)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_prune > 60:
                self._prune(now)
            bucket = self._buckets.get(client)
            if bucket is None:
                bucket = self._buckets[client] = _Bucket(float(self.rpm), now)
            refill = (now - bucket.updated) * self._rate
            bucket.tokens = min(float(self.rpm), bucket.tokens + refill)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return True, int(bucket.tokens), 0.0
            return False, 0, (1 - bucket.tokens) / self._rate

    def _prune(self, now: float) -> None:
        # A bucket idle for a minute is full again: forgetting it changes nothing.
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < 60}
        self._last_prune = now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count API requests per client; answer 429 with ``Retry-After`` when exhausted."""
        if (
            scope["type"] != "http"
            or scope["path"] in RATE_LIMIT_EXEMPT
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        allowed, remaining, wait = self._take(client[0] if client else "unknown")
        limit_headers = [
            (b"x-ratelimit-limit", str(self.rpm).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
        ]
        if not allowed:
            await _send_json(
                send,
                429,
                f"Rate limit exceeded. Max {self.rpm} requests per minute.",
                [(b"retry-after", str(max(1, math.ceil(wait))).encode()), *limit_headers],
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *limit_headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
