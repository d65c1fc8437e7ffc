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
import errno
import logging
import queue
import sqlite3
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


class StorageUnavailable(Exception):
    """The store cannot take writes right now: disk full or read-only storage.

    Nothing of the failed commit group is stored; ``full`` tells the API whether to
    answer 507 (no space) or 503 (read-only or I/O error).
    """

    def __init__(self, message: str, *, full: bool) -> None:
        super().__init__(message)
        self.full = full


# SQLite result codes (primary code: the low byte of the extended code) that mean the
# storage itself refused the write, not the operation being wrong.
_SQLITE_FULL = {"SQLITE_FULL"}
# BUSY/LOCKED: another process (a backup in rollback-journal mode, a tool) held the file
# longer than the busy timeout; the write can succeed later, like the others here.
_SQLITE_UNWRITABLE = {
    "SQLITE_IOERR",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_PERM",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
}
# PostgreSQL SQLSTATEs: disk_full and insufficient resources; read-only transaction, I/O
# error, lost or refused connections (08xxx), admin shutdown, cannot connect now, and
# out of memory: the database will take writes again, the request was not wrong.
_PG_FULL = {"53100", "53000"}
_PG_UNWRITABLE = {"25006", "58030", "57P01", "57P02", "57P03", "53200"}
_PG_UNWRITABLE_CLASSES = ("08",)
_OS_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_OS_UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def storage_failure(
    exc: BaseException, looks_full: Callable[[], bool] | None = None
) -> StorageUnavailable | None:
    """``exc`` as a :class:`StorageUnavailable` if the storage refused the write
    (full, read-only, I/O error), else ``None`` (a bug or a bad operation).

    ``looks_full`` (the store's, when it has one) tells a disk-full write that failed
    as a plain I/O error (a write starting exactly at the limit) from other I/O errors.
    """
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        primary = "_".join(name.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
        if primary in _SQLITE_FULL or (primary == "SQLITE_IOERR" and _full(looks_full)):
            return StorageUnavailable(f"Storage full: {exc} ({name})", full=True)
        if primary in _SQLITE_UNWRITABLE:
            return StorageUnavailable(f"Storage not writable: {exc} ({name})", full=False)
        return None
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate in _PG_FULL:
            return StorageUnavailable(f"Storage full: {exc}", full=True)
        if sqlstate in _PG_UNWRITABLE or sqlstate.startswith(_PG_UNWRITABLE_CLASSES):
            return StorageUnavailable(f"Storage not writable: {exc}", full=False)
        return None
    if isinstance(exc, OSError):
        if exc.errno in _OS_FULL:
            return StorageUnavailable(f"Storage full: {exc}", full=True)
        if exc.errno in _OS_UNWRITABLE:
            return StorageUnavailable(f"Storage not writable: {exc}", full=False)
    return None


@dataclass
class _Pending:
    op: WriteOp
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


CommitListener = Callable[[Sequence[WriteOp], Sequence[Any]], None]

_STOP = object()


def _full(looks_full: Callable[[], bool] | None) -> bool:
    if looks_full is None:
        return False
    try:
        return looks_full()
    except OSError:  # cannot even look: not known to be full
        return False


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
        self.storage_error: str | None = None
        """Why the last commit failed when the storage refused it; ``None`` once a
        commit succeeds again (reported by ``/health``)."""

    @property
    def queue_depth(self) -> int:
        """Writes queued and not yet taken into a commit group (approximate, as any
        ``qsize``; for monitoring)."""
        return self._queue.qsize()

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
        :class:`StorageUnavailable` if the storage refused the commit (disk full,
        read-only), :class:`WriterBusy` if the queue is full, :class:`WriterStopped` if
        not running.
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
            refused = storage_failure(exc, getattr(self.store, "looks_full", None))
            if refused is None:
                log.exception("group commit of %d writes failed", len(group))
                results = [exc] * len(group)
            else:  # expected while the disk is full: one line, no traceback per group
                log.error("group commit of %d writes refused: %s", len(group), refused)
                self.storage_error = str(refused)
                results = [refused] * len(group)
        else:
            self.storage_error = None
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
