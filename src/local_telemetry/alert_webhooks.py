"""Delivery of alert transitions to webhooks (``TELEMETRY_ALERT_WEBHOOKS``).

Each receiver URL has its own bounded queue and one asyncio task that POSTs the queued
notifications in order, so a slow or dead receiver delays only itself, and nothing on
the ingest path ever waits for a webhook. A notification is retried with exponential
backoff (honouring ``Retry-After``) on connection errors, timeouts, 408, 425, 429 and
5xx, up to ``attempts`` times; other answers end its delivery. When a receiver's queue
is full the oldest notification is dropped (counted in ``dropped``). Undelivered
notifications do not survive a restart; the alerts themselves are in the store
(``GET /api/v1/alerts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from local_telemetry import __version__
from local_telemetry.api.background import cancel_and_wait

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 425, 429})


@dataclass
class WebhookStats:
    """What happened to notifications, over all receivers."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: int = 0


@dataclass
class WebhookSender:
    """Posts notifications to every URL in the background (see the module docstring)."""

    urls: list[str]
    attempts: int = 5
    timeout: float = 5.0
    backoff: float = 0.5
    max_backoff: float = 30.0
    queue_size: int = 1000
    stats: WebhookStats = field(default_factory=WebhookStats)
    _queues: dict[str, asyncio.Queue[bytes]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _client: httpx.AsyncClient | None = None

    def start(self) -> None:
        """Start one delivery task per URL (in the running event loop)."""
        if self._tasks or not self.urls:
            return
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            headers={"user-agent": f"local-telemetry/{__version__}"},
            follow_redirects=False,
        )
        for url in self.urls:
            queue: asyncio.Queue[bytes] = asyncio.Queue(self.queue_size)
            self._queues[url] = queue
            self._tasks.append(asyncio.create_task(self._deliver(url, queue), name="webhook"))

    def send(self, event: str, alert: dict[str, Any]) -> None:
        """Queue ``{"event", "alert", "sent_at"}`` for every receiver; never blocks."""
        if not self._queues:
            return
        body = orjson.dumps(
            {
                "event": event,
                "alert": alert,
                "sent_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            }
        )
        for queue in self._queues.values():
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                    queue.task_done()
                    self.stats.dropped += 1
            queue.put_nowait(body)

    async def drain(self) -> None:
        """Wait until every queued notification was delivered or given up."""
        for queue in self._queues.values():
            await queue.join()

    async def stop(self) -> None:
        """Stop delivering (what is still queued is dropped) and close the client."""
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        pending = sum(queue.qsize() for queue in self._queues.values())
        if pending:
            self.stats.dropped += pending
            log.warning("%d alert notifications not delivered before shutdown", pending)
        self._queues.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _deliver(self, url: str, queue: asyncio.Queue[bytes]) -> None:
        while True:
            body = await queue.get()
            try:
                delivered = await self._post_with_retries(url, body)
            finally:
                queue.task_done()
            if delivered:
                self.stats.delivered += 1
            else:
                self.stats.failed += 1

    async def _post_with_retries(self, url: str, body: bytes) -> bool:
        assert self._client is not None
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            self.stats.attempts += 1
            wait = delay
            try:
                response = await self._client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in RETRYABLE:
                    log.warning("webhook %s refused an alert notification: %s", url, problem)
                    return False
                wait = max(delay, _retry_after(response.headers.get("retry-after")))
            if attempt == self.attempts:
                log.warning("webhook %s failed %d times, giving up: %s", url, attempt, problem)
                return False
            await asyncio.sleep(min(wait, self.max_backoff))
            delay = min(delay * 2, self.max_backoff)
        return False  # pragma: no cover - the loop returns


def _retry_after(value: str | None) -> float:
    """Seconds of a ``Retry-After`` header (delta seconds or HTTP date); 0 if absent."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return 0.0
