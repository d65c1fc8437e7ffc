"""The rate limiter's bookkeeping in-process: budgets, memory bound, no raw keys kept.

Pure logic (a fake clock, a trivial inner ASGI app); what a client sees through a real
server is in ``tests/hardening/test_rate_limits.py``.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from local_telemetry.api.security import RateLimiter, TokenBuckets


class Clock:
    """A settable clock for :class:`TokenBuckets`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_rpm_then_refuses_with_whole_seconds() -> None:
    clock = Clock()
    buckets = TokenBuckets(rpm=6, max_buckets=100, clock=clock)
    decisions = [buckets.take("a") for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 6 + [False]
    assert [d.remaining for d in decisions] == [5, 4, 3, 2, 1, 0, 0]
    assert decisions[-1].retry_after == 10  # 6 a minute: one every 10 s
    clock.now += 9.5
    assert buckets.take("a").retry_after == 1  # rounded up, never 0
    clock.now += 0.5
    assert buckets.take("a").allowed


def test_check_neither_spends_nor_remembers() -> None:
    buckets = TokenBuckets(rpm=2, max_buckets=100, clock=Clock())
    for _ in range(5):
        assert buckets.check("new").allowed
    assert len(buckets) == 0
    buckets.take("x")
    buckets.take("x")
    assert not buckets.check("x").allowed


def test_the_bucket_count_is_capped_under_a_flood_of_new_names() -> None:
    clock = Clock()
    buckets = TokenBuckets(rpm=60, max_buckets=100, clock=clock)
    for index in range(10_000):
        buckets.take(f"name {index}")
        clock.now += 0.001  # a flood: nothing is idle long enough to be full again
        assert len(buckets) <= 100
    assert len(buckets) == 100


def test_eviction_forgets_the_least_recently_used() -> None:
    clock = Clock()
    buckets = TokenBuckets(rpm=3, max_buckets=16, clock=clock)
    for _ in range(3):
        buckets.take("busy")
    for index in range(15):
        buckets.take(f"other {index}")
        buckets.take("busy")  # keeps "busy" the most recently used
    for index in range(15, 60):
        buckets.take(f"other {index}")
        buckets.take("busy")
    assert "busy" in buckets.names()
    assert not buckets.take("busy").allowed  # still empty: it was never forgotten


def test_idle_buckets_go_first() -> None:
    clock = Clock()
    buckets = TokenBuckets(rpm=60, max_buckets=16, clock=clock)
    for index in range(10):
        buckets.take(f"old {index}")
    clock.now += 61  # all full again
    buckets.take("new")
    assert buckets.names() == ["new"]


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    status = 401 if scope["path"] == "/api/v1/refuse" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _request(limiter: RateLimiter, key: str | None, path: str = "/api/v1/kpis") -> Message:
    headers = [] if key is None else [(b"authorization", f"Bearer {key}".encode())]
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": headers,
        "client": ("192.0.2.1", 5555),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(limiter(scope, receive, send))
    return sent[0]


async def _every_key(credential: bytes) -> bool:
    return True


async def _no_key(credential: bytes) -> bool:
    return False


async def _only_good(credential: bytes) -> bool:
    return credential == b"good"


def test_random_keys_do_not_grow_memory_and_no_raw_key_is_kept() -> None:
    # Even if every key were a verified one, the bucket count stays capped.
    limiter = RateLimiter(_ok, rpm=5, max_buckets=64, recognizes=_every_key)
    keys = [secrets.token_urlsafe(24) for _ in range(1000)]
    for key in keys:
        assert _request(limiter, key)["status"] == 200
    assert len(limiter.buckets) <= 64
    names = "\n".join(limiter.buckets.names())
    assert not any(key in names for key in keys)


def test_only_verified_keys_get_a_budget_of_their_own() -> None:
    keyed = RateLimiter(_ok, rpm=2, max_buckets=64, recognizes=_every_key)
    for index in range(5):
        assert _request(keyed, f"key-{index}")["status"] == 200
    # Auth off, or keys auth never verified: one budget per address, whatever key is sent.
    for shared in (
        RateLimiter(_ok, rpm=2, max_buckets=64),
        RateLimiter(_ok, rpm=2, max_buckets=64, recognizes=_no_key),
    ):
        statuses = [_request(shared, f"key-{index}")["status"] for index in range(5)]
        assert statuses == [200, 200, 429, 429, 429]
        assert len(shared.buckets) == 1


def test_refusals_spend_the_address_failed_auth_budget() -> None:
    limiter = RateLimiter(_ok, rpm=3, max_buckets=64, recognizes=_only_good)
    for index in range(3):
        assert _request(limiter, f"guess-{index}", "/api/v1/refuse")["status"] == 401
    assert _request(limiter, "guess-4")["status"] == 429
    # While the address's failed-auth budget is empty, even a valid key from it waits.
    assert _request(limiter, "good")["status"] == 429
