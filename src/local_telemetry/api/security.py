"""Rate limiting per API key or client address (ASGI), and the JSON answer it shares.

Access control (API keys, scopes) lives in ``api/auth.py``. Rate limiting
(``TELEMETRY_RATE_LIMIT_ENABLED``) covers every ``/api/`` endpoint and the OTLP ingest
``/v1/traces`` (``/health``,
``/metrics`` and the docs stay exempt, as in the v3 guide), counted per API key or per
client address in this process (see :class:`RateLimiter`).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGIN = "/login"
OTLP_TRACES = "/v1/traces"


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


send_json = _send_json
"""``{"detail": ...}`` answered straight from an ASGI layer (public name for other layers)."""


IDLE_SECONDS = 60.0
"""A bucket refills completely within a minute: one idle that long is full again."""


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Decision:
    """The outcome of asking a bucket for one request."""

    allowed: bool
    remaining: int
    """Whole tokens left after this request."""
    retry_after: int
    """Whole seconds (at least 1) until a token is back; 0 when allowed."""


class TokenBuckets:
    """Token buckets by name, ``rpm`` requests a minute each, refilled smoothly.

    At most ``max_buckets`` names are remembered, in least-recently-used order: a new name
    beyond the cap first forgets buckets idle long enough to be full again (that changes
    nothing), then the least recently used ones, so a flood of new names (random API
    keys, spoofed addresses) cannot grow memory without bound.
    """

    def __init__(
        self, rpm: int, max_buckets: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rpm = rpm
        self.max_buckets = max_buckets
        self._rate = rpm / 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many buckets are remembered."""
        with self._lock:
            return len(self._buckets)

    def names(self) -> list[str]:
        """The remembered bucket names, least recently used first."""
        with self._lock:
            return list(self._buckets)

    def take(self, name: str) -> Decision:
        """Spend one token of ``name``'s bucket if it has one."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                self._make_room(now)
                bucket = self._buckets[name] = _Bucket(float(self.rpm), now)
            else:
                self._buckets.move_to_end(name)
                bucket.tokens = self._tokens(bucket, now)
                bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return Decision(True, int(bucket.tokens), 0)
            return Decision(False, 0, self._wait(bucket.tokens))

    def check(self, name: str) -> Decision:
        """Whether ``name`` has a token left, without spending or remembering anything."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(name)
            tokens = float(self.rpm) if bucket is None else self._tokens(bucket, now)
        if tokens >= 1:
            return Decision(True, int(tokens), 0)
        return Decision(False, 0, self._wait(tokens))

    def _tokens(self, bucket: _Bucket, now: float) -> float:
        return min(float(self.rpm), bucket.tokens + (now - bucket.updated) * self._rate)

    def _wait(self, tokens: float) -> int:
        return max(1, math.ceil((1 - tokens) / self._rate))

    def _make_room(self, now: float) -> None:
        # The front is the least recently used bucket, so idle ones come first.
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if len(self._buckets) < self.max_buckets and now - oldest.updated < IDLE_SECONDS:
                return
            self._buckets.popitem(last=False)


def bearer_credential(scope: Scope) -> bytes | None:
    """The credential of the (first) ``Authorization: Bearer`` header, if there is one."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credential = value.partition(b" ")
            credential = credential.strip()
            # The scheme name is case-insensitive (RFC 7235); the credential is not.
            return credential if scheme.lower() == b"bearer" and credential else None
    return None


def key_bucket(credential: bytes) -> str:
    """The bucket name of an API key: its SHA-256, so no raw key is ever kept."""
    return "key " + hashlib.sha256(credential).hexdigest()


class RateLimiter:
    """ASGI layer limiting ``/api/`` requests per API key, or per client address.

    With auth on, ``recognizes`` tells valid keys from made-up ones
    (:meth:`~local_telemetry.api.auth.KeyRing.recognizes`, cached): a request carrying a
    valid key is counted against that key; anything else against the client address,
    ``scope["client"]`` (uvicorn has already replaced a trusted proxy's address by the
    client's from ``X-Forwarded-For``: see ``TELEMETRY_TRUSTED_PROXIES``). A key nobody
    verified proves nothing (anyone could send a new one per request), so it is counted
    by address, as everything is with auth off.

    It runs outside auth, so each guessed key would get a fresh bucket of its own: to
    limit guessing per address, every 401 answered to a request that tried a key (a
    bearer header on any path, or a dashboard sign-in) spends a token of the address's
    failed-auth budget, and while that is empty such requests get 429 whatever key they
    carry.
    """

    def __init__(
        self,
        app: ASGIApp,
        rpm: int,
        *,
        max_buckets: int = 10_000,
        recognizes: Callable[[bytes], Awaitable[bool]] | None = None,
    ) -> None:
        self.app = app
        self.rpm = rpm
        self.by_key = recognizes is not None
        self.recognizes = recognizes
        self.buckets = TokenBuckets(rpm, max_buckets)

    def _tries_key(self, scope: Scope, credential: bytes | None) -> bool:
        # The dashboard's sign-in form posts a key in its body (dashboard/auth.py).
        return self.by_key and (
            credential is not None or (scope["method"] == "POST" and scope["path"] == LOGIN)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count API requests and key guesses; 429 with ``Retry-After`` past the budget."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        counted = path.startswith("/api/") or path == OTLP_TRACES  # both are ingest
        credential = bearer_credential(scope) if self.by_key else None
        tries_key = self._tries_key(scope, credential)
        if not counted and not tries_key:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        decision = Decision(True, self.rpm, 0)
        if tries_key:
            decision = self.buckets.check("fail " + address)
        if counted and decision.allowed:
            name = "addr " + address
            recognizes = self.recognizes
            if credential is not None and recognizes is not None and await recognizes(credential):
                name = key_bucket(credential)
            decision = self.buckets.take(name)
        limit_headers = [
            (b"x-ratelimit-limit", str(self.rpm).encode()),
            (b"x-ratelimit-remaining", str(decision.remaining).encode()),
        ]
        if not decision.allowed:
            await _send_json(
                send,
                429,
                f"Rate limit exceeded. Max {self.rpm} requests per minute.",
                [(b"retry-after", str(decision.retry_after).encode()), *limit_headers],
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if tries_key and message["status"] == 401:
                    self.buckets.take("fail " + address)
                if counted:
                    message["headers"] = [*message.get("headers", []), *limit_headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
