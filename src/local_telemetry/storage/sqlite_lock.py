"""The server lock of a SQLite database: who is serving this file right now?

A server process holds a SHARED ``flock`` on the sidecar ``<db_path>.lock`` for its
whole lifetime; ``local-telemetry restore`` asks for an EXCLUSIVE one without waiting,
so it refuses to swap the file under a running server. The lock is on a sidecar, not
on the database file: SQLite's own POSIX (``fcntl``) locks on the database are dropped
by the kernel whenever *any* descriptor of that file is closed in the process, and
``flock`` locks on the same file would be visible to nothing SQLite does anyway. A
killed server (even ``kill -9``) releases its lock with its descriptors. Several
servers on the same file (tests restart servers on one file) all get the shared lock.

Needs POSIX ``flock`` (Linux, macOS), as the SDK's spool does.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"


def lock_path(db_path: Path) -> Path:
    """The sidecar lock file of ``db_path``: ``<db_path>.lock``."""
    return db_path.with_name(db_path.name + LOCK_SUFFIX)


class ServerLock:
    """One held ``flock`` on a database's sidecar file; :meth:`release` gives it back."""

    def __init__(self, path: Path, descriptor: int, exclusive: bool) -> None:
        self.path = path
        self.exclusive = exclusive
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        """Unlock and close (closing alone would unlock too; idempotent)."""
        if self._descriptor is None:
            return
        descriptor, self._descriptor = self._descriptor, None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)

    def __enter__(self) -> ServerLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _open(db_path: Path) -> tuple[Path, int]:
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def hold_server_lock(db_path: Path) -> ServerLock:
    """Take the SHARED lock a serving process holds until it stops.

    Blocks while a restore holds the exclusive lock (a restore takes a moment), so a
    server started during a restore opens the restored file, not the one moved aside.
    """
    path, descriptor = _open(db_path)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
    except BaseException:
        os.close(descriptor)
        raise
    return ServerLock(path, descriptor, exclusive=False)


def hold_server_lock_if_possible(db_path: Path) -> ServerLock | None:
    """:func:`hold_server_lock`, or ``None`` with a warning when the lock file cannot be
    made (a read-only directory): the server still serves what the storage allows
    rather than failing to start, which a supervisor would turn into a restart loop."""
    try:
        return hold_server_lock(db_path)
    except OSError as exc:
        log.warning("no server lock (%s): `local-telemetry restore` cannot see this server", exc)
        return None


def try_exclusive_lock(db_path: Path) -> ServerLock | None:
    """The EXCLUSIVE lock if no server holds the database open, else ``None`` (no wait)."""
    path, descriptor = _open(db_path)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    return ServerLock(path, descriptor, exclusive=True)
