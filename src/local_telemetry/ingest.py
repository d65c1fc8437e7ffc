"""The single writer: group commit of every write the API accepts.

Request handlers validate their input, then ``await writer.submit(op)``. One thread owns
the store's write connection; it takes whatever operations have queued up (up to
``max_group``), applies them in one transaction, and only after ``COMMIT`` returned
(the WAL fsync'd) completes each request's future. Many concurrent requests share one
fsync, the event loop never runs a database call, and no 2xx is sent for a write that
is not durable. When the queue is full, :class:`WriterBusy` tells the caller to answer
503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from local_telemetry.storage.base import Store, WriteOp

log = logging.getLogger(__name__)


class WriterBusy(Exception):
    """The write queue is full; the client should retry shortly."""


Read = Callable[..., Awaitable[Any]]
"""Runs a blocking store read on a reader thread (``AppState.read``)."""
Submit = Callable[[WriteOp], Awaitable[Any]]
"""Queues a write operation and returns its result (``GroupCommitWriter.submit``)."""

BUSY_RETRIES = 60
BUSY_WAIT_SECONDS = 0.5


async def submit_patiently(submit: Submit, op: WriteOp) -> Any:
    """Submit ``op``, waiting out a full write queue (heavy ingest) for up to 30 s:
    for background maintenance (retention, stale runs), which has no client to answer
    503 to and must not fail just because ingest is busy."""
    for _ in range(BUSY_RETRIES):
        try:
            return await submit(op)
        except WriterBusy:
            await asyncio.sleep(BUSY_WAIT_SECONDS)
    return await submit(op)


class WriterStopped(Exception):
    """The writer is not running (server starting or shutting down)."""


@dataclass
class _Pending:
    op: WriteOp
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


CommitListener = Callable[[Sequence[WriteOp], Sequence[Any]], None]

_STOP = object()


class GroupCommitWriter:
    """Serializes writes to one store and commits them in groups."""

    def __init__(self, store: Store, *, max_queue: int = 10_000, max_group: int = 512) -> None:
        self.store = store
        self.max_group = max_group
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._listeners: list[CommitListener] = []
        self.commits = 0
        self.ops_committed = 0

    def add_listener(self, listener: CommitListener) -> None:
        """Call ``listener(ops, results)`` in the writer thread after each commit."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    async def submit(self, op: WriteOp) -> Any:
        """Queue ``op`` and wait until it is committed; return its result.

        Raises the operation's own exception (e.g. a constraint violation) if it failed,
        :class:`WriterBusy` if the queue is full, :class:`WriterStopped` if not running.
        """
        if self._thread is None:
            raise WriterStopped("writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        try:
            self._queue.put_nowait(_Pending(op, future, loop))
        except queue.Full:
            raise WriterBusy("write queue is full") from None
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group: list[_Pending] = [first]
            stop_after = False
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                group.append(item)
            self._commit(group)
            if stop_after:
                return

    def _commit(self, group: list[_Pending]) -> None:
        ops = [pending.op for pending in group]
        try:
            results: list[Any] = self.store.apply(ops)
        except Exception as exc:  # the commit failed: nothing in the group is stored
            log.exception("group commit of %d writes failed", len(group))
            results = [exc] * len(group)
        else:
            self.commits += 1
            self.ops_committed += len(group)
            for listener in self._listeners:
                try:
                    listener(ops, results)
                except Exception:
                    log.exception("commit listener failed")
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for pending, result in zip(group, results, strict=True):
            by_loop.setdefault(pending.loop, []).append((pending.future, result))
        for loop, outcomes in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop closed: the requests are gone
                loop.call_soon_threadsafe(_resolve, outcomes)


def _resolve(outcomes: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in outcomes:
        if not future.done():
            future.set_result(result)
