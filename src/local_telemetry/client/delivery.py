"""Background delivery: the bounded queue and the sender thread behind both clients.

Callers enqueue items and return at once. One daemon thread takes what has queued,
sends run starts through ``POST /api/v1/runs/batch`` and everything else in queue order
(so a run's PATCH never overtakes its POST), retries transient failures with backoff and
jitter until ``retry_deadline``, and hands what it still cannot deliver to the disk spool
(when one is configured); later items then go to the spool too, behind them, until the
spool has been replayed. Nothing here raises into the caller: failures are counted, logged
on the ``local_telemetry`` logger and passed to ``on_error``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from local_telemetry.client.truncation import truncate_fields

log = logging.getLogger("local_telemetry")

ItemKind = Literal["start", "update", "events", "commit", "qc"]
LOW_VALUE_KINDS: frozenset[str] = frozenset({"events"})
RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504, 507})
"""Worth another try: timeouts, rate limits, busy or failing servers, and a full disk
(507: the server keeps the run once space returns, as README "Overload" says)."""
BATCH_LIMIT = 1000


@dataclass
class Item:
    """One unit of telemetry to deliver: a run start, an update, events, a commit, a QC."""

    kind: ItemKind
    event_id: str
    body: Any
    weight: int = 1
    """How many caller items this one carries (updates merged into it count too)."""

    def to_json(self) -> dict[str, Any]:
        """The item as stored in the spool."""
        return {"kind": self.kind, "event_id": self.event_id, "body": self.body, "w": self.weight}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        """An item read back from the spool."""
        return cls(data["kind"], data["event_id"], data["body"], int(data.get("w", 1)))


def coalesce(items: list[Item]) -> list[Item]:
    """Merge each update into the run's previous start or update when nothing else of
    that run lies between them: one request instead of several, same final row.

    Order within a run is kept; items of different runs are independent.
    """
    merged: list[Item] = []
    last: dict[str, int] = {}  # event_id -> index in merged of that run's latest item
    for item in items:
        index = last.get(item.event_id)
        if item.kind == "update" and index is not None:
            previous = merged[index]
            if previous.kind in ("start", "update"):
                body = {**previous.body, **item.body}
                merged[index] = Item(previous.kind, previous.event_id, body, previous.weight + 1)
                continue
        last[item.event_id] = len(merged)
        merged.append(item)
    return merged


class DeliveryError(Exception):
    """Why an item could not be delivered (given to ``on_error``)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class _Transient(Exception):
    """A failure worth retrying (connection, timeout, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SpoolBatchLike(Protocol):
    """A claimed spool file (see ``spool.py``)."""

    items: list[dict[str, Any]]

    def ack(self, count: int) -> None:
        """The first ``count`` items were delivered."""

    def release(self) -> None:
        """Give the file back without deleting it."""


class SpoolLike(Protocol):
    """What delivery needs of the disk spool."""

    def append(self, items: list[dict[str, Any]]) -> int:
        """Durably append items; return how many were written."""

    def claim(self) -> SpoolBatchLike | None:
        """Lock the oldest spool file for replay, or ``None`` when there is none."""


@dataclass
class Stats:
    """Items (not HTTP requests) by outcome."""

    sent: int = 0
    retried: int = 0
    spooled: int = 0
    dropped: int = 0
    rejected: int = 0
    truncated: int = 0
    """Oversized error fields shortened before sending (``client/truncation.py``)."""

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict."""
        return {
            "sent": self.sent,
            "retried": self.retried,
            "spooled": self.spooled,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "truncated": self.truncated,
        }


ErrorHook = Callable[[BaseException, Item | None], None]


@dataclass
class DeliveryOptions:
    """Tunables of the delivery engine."""

    max_queue_size: int = 10_000
    retry_deadline: float = 10.0
    backoff_base: float = 0.1
    backoff_cap: float = 2.0
    flush_interval: float = 0.05


@dataclass
class _State:
    queue: collections.deque[Item] = field(default_factory=collections.deque)
    in_flight: int = 0
    # The latest queued item of each run, while it is still queued: an update merges
    # into it instead of taking a queue slot (see coalesce()).
    latest: dict[str, Item] = field(default_factory=dict)


class Delivery:
    """The queue and sender thread; safe to use from any thread, and after ``fork()``."""

    def __init__(
        self,
        make_http: Callable[[], httpx.Client],
        options: DeliveryOptions,
        spool: SpoolLike | None = None,
        on_error: ErrorHook | None = None,
    ) -> None:
        self._make_http = make_http
        self.options = options
        self.spool = spool
        self.on_error = on_error
        self.stats = Stats()
        self._lock = threading.Condition()
        self._state = _State()
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None
        self._closed = False
        self._spooling = False  # items go to the spool until it has been replayed
        self._pid = os.getpid()
        reference = weakref.WeakMethod(self._after_fork)

        def after_fork_in_child() -> None:
            method = reference()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=after_fork_in_child)

    # ----- caller side -----

    def submit(self, item: Item) -> None:
        """Queue ``item``; never blocks. A full queue drops the oldest low-value item,
        else spools (run starts and ends are never dropped while a spool exists)."""
        if self._closed:
            self._fail(DeliveryError("client is closed"), item, dropped=True)
            return
        if item.kind in ("start", "update"):
            try:
                shortened = truncate_fields(item.body)
            except Exception:  # truncation must never cost the caller or the run
                log.exception("truncating oversized fields failed")
                shortened = 0
            if shortened:
                with self._lock:
                    self.stats.truncated += shortened
        with self._lock:
            state = self._state
            previous = state.latest.get(item.event_id)
            if (
                item.kind == "update"
                and previous is not None
                and previous.kind in ("start", "update")
            ):
                previous.body = {**previous.body, **item.body}
                previous.weight += item.weight
                return
            if len(state.queue) >= self.options.max_queue_size:
                victim = next((i for i in state.queue if i.kind in LOW_VALUE_KINDS), None)
                if victim is not None:
                    state.queue.remove(victim)
                    if state.latest.get(victim.event_id) is victim:
                        del state.latest[victim.event_id]
                    self._fail(DeliveryError("queue full: event dropped"), victim, dropped=True)
                elif item.kind in LOW_VALUE_KINDS or self.spool is None:
                    self._fail(DeliveryError("queue full: item dropped"), item, dropped=True)
                    return
                else:
                    self._to_spool([item])
                    return
            state.queue.append(item)
            state.latest[item.event_id] = item
            self._ensure_thread()
            self._lock.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued was delivered or spooled; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._lock.notify_all()
            while self._state.queue or self._state.in_flight:
                if self._thread is None or not self._thread.is_alive():
                    self._ensure_thread()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining if remaining is not None else 0.5)
        return True

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, then stop the thread; what is left goes to the spool."""
        delivered = self.flush(timeout)
        with self._lock:
            self._closed = True
            leftover = list(self._state.queue)
            self._state.queue.clear()
            self._state.latest.clear()
            self._lock.notify_all()
        if leftover:
            if self.spool is not None:
                self._to_spool(leftover)
            else:
                for item in leftover:
                    self._fail(DeliveryError("closed before delivery"), item, dropped=True)
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._http is not None:
            with contextlib.suppress(Exception):
                self._http.close()
        return delivered and not leftover

    # ----- sender thread -----

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="local-telemetry-delivery", daemon=True
            )
            self._thread.start()

    def _after_fork(self) -> None:
        # The child has a copy of the queue but not the parent's thread or sockets: it
        # starts empty and builds its own sender on first use.
        self._lock = threading.Condition()
        self._state = _State()
        self._thread = None
        self._http = None
        self._pid = os.getpid()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._state.queue and not self._closed:
                    self._lock.wait(1.0)
                    if self.spool is not None and not self._state.queue:
                        break  # idle: time to look at the spool
                if self._closed and not self._state.queue:
                    return
                chunk = [
                    self._state.queue.popleft()
                    for _ in range(min(BATCH_LIMIT, len(self._state.queue)))
                ]
                latest = self._state.latest
                for item in chunk:
                    if latest.get(item.event_id) is item:
                        del latest[item.event_id]
                self._state.in_flight = len(chunk)
            try:
                self._replay_spool()
                if chunk:
                    self._deliver_or_spool(chunk)
            except Exception as exc:  # never let the thread die
                log.exception("telemetry delivery failed")
                for item in chunk:
                    self._fail(exc, item, dropped=True)
            finally:
                with self._lock:
                    self._state.in_flight = 0
                    self._lock.notify_all()

    def _deliver_or_spool(self, chunk: list[Item]) -> None:
        if self._spooling:
            self._to_spool(chunk)
            return
        chunk = coalesce(chunk)
        try:
            self._deliver(chunk, self.options.retry_deadline)
        except _Undelivered as exc:
            rest = chunk[exc.delivered :]
            if self.spool is not None:
                self._spooling = True
                self._to_spool(rest)
            else:
                for item in rest:
                    self._fail(DeliveryError(str(exc)), item, dropped=True)

    def _replay_spool(self) -> None:
        if self.spool is None:
            return
        while True:
            batch = self.spool.claim()
            if batch is None:
                self._spooling = False
                return
            items = [Item.from_json(data) for data in batch.items]
            try:
                self._deliver(items, self.options.retry_deadline)
            except _Undelivered as exc:
                batch.ack(exc.delivered)
                batch.release()
                self._spooling = True
                return
            batch.ack(len(items))

    def _to_spool(self, items: list[Item]) -> None:
        assert self.spool is not None
        written = self.spool.append([item.to_json() for item in items])
        self.stats.spooled += sum(item.weight for item in items[:written])
        for item in items[written:]:
            self._fail(DeliveryError("spool full: item dropped"), item, dropped=True)

    # ----- HTTP -----

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = self._make_http()
        return self._http

    def _deliver(self, items: list[Item], budget: float) -> None:
        """Send ``items`` in order; raise ``_Undelivered`` with how many went through."""
        deadline = time.monotonic() + budget
        index = 0
        while index < len(items):
            end = index
            while end < len(items) and items[end].kind == "start" and end - index < BATCH_LIMIT:
                end += 1
            group = items[index:end] if end > index else [items[index]]
            try:
                self._with_retries(group, deadline)
            except _Transient as exc:
                raise _Undelivered(str(exc), index) from None
            index += len(group)

    def _with_retries(self, group: list[Item], deadline: float) -> None:
        attempt = 0
        while True:
            try:
                self._send(group)
                return
            except _Transient as exc:
                attempt += 1
                delay = min(
                    self.options.backoff_cap, self.options.backoff_base * 2 ** (attempt - 1)
                )
                delay = random.uniform(0, delay)  # full jitter
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                if time.monotonic() + delay > deadline:
                    raise
                self.stats.retried += sum(item.weight for item in group)
                time.sleep(delay)

    def _send(self, group: list[Item]) -> None:
        http = self._client()
        first = group[0]
        try:
            if first.kind == "start":
                response = http.post("/api/v1/runs/batch", json=[i.body for i in group])
            elif first.kind == "update":
                response = http.patch(f"/api/v1/runs/{first.event_id}", json=first.body)
            elif first.kind == "events":
                response = http.post(f"/api/v1/runs/{first.event_id}/events", json=first.body)
            elif first.kind == "commit":
                path = f"/api/v1/runs/{first.event_id}/associate-commit"
                response = http.post(path, json=first.body)
            else:
                response = http.post(f"/api/v1/runs/{first.event_id}/qc", json=first.body)
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status in RETRYABLE_STATUSES:
            raise _Transient(f"HTTP {status}", _retry_after(response))
        if status >= 400:
            message = _server_message(response)
            # A server without QC endpoints answers 405, or 404 without "Run not found".
            no_qc = status == 405 or (status == 404 and "Run not found" not in message)
            if first.kind == "qc" and no_qc:
                message = "quality scores are not available on this server yet: " + message
            log.warning("telemetry %s for %s rejected: %s", first.kind, first.event_id, message)
            for item in group:
                self._fail(DeliveryError(message, status), item, dropped=False)
            return
        if first.kind == "start":
            errors = response.json().get("errors", [])
            rejected = 0
            for error in errors:
                item = group[error["index"]]
                message = f"run rejected: {error.get('detail')}"
                log.warning("telemetry start for %s rejected: %s", item.event_id, message)
                self._fail(DeliveryError(message, 422), item, dropped=False)
                rejected += item.weight
            self.stats.sent += sum(item.weight for item in group) - rejected
        else:
            self.stats.sent += sum(item.weight for item in group)

    def _fail(self, exc: BaseException, item: Item | None, *, dropped: bool) -> None:
        weight = item.weight if item is not None else 1
        if dropped:
            self.stats.dropped += weight
        else:
            self.stats.rejected += weight
        if self.on_error is not None:
            try:
                self.on_error(exc, item)
            except Exception:
                log.exception("on_error callback failed")


class _Undelivered(Exception):
    """Delivery stopped after ``delivered`` items; the rest must be retried later."""

    def __init__(self, message: str, delivered: int) -> None:
        super().__init__(message)
        self.delivered = delivered


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _server_message(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    text = detail if detail is not None else response.text[:500]
    return f"HTTP {response.status_code}: {text}"
