"""Disk spool: items the server could not take yet, kept until it confirms them.

Layout: one directory per server, ``<root>/<sha256(api_url)[:16]>/`` (the URL without a
trailing ``/``), holding append-only files of JSON lines::

    spool-<creation time, ns, 20 digits>-<pid>-<random>.jsonl

Each ``Spool`` object writes to a file of its own: a *lineage* (``<pid>-<random>``) whose
files never interleave with another writer's, so no lock is needed to append. A file is
created under a temporary name, locked (``fcntl.flock``) and only then renamed into place,
so no reader ever sees a writer's file unlocked; the directory is fsync'd. Every
``append`` writes whole lines and fsyncs before returning: an entry whose ``append``
returned survives ``kill -9`` and power loss. A file is rotated past ``max_file_bytes``.

Replay: ``claim()`` closes this object's own file (so its items become claimable), then
tries files oldest first with a non-blocking ``flock``. It skips a file locked by anyone
(a live writer or another replayer) *and every later file of the same lineage*, so one
writer's items are replayed in the order written even with several replaying processes
(a run's PATCH never overtakes its POST). Order across lineages is by file creation
time only. After locking, it checks that the path still names the locked file (another
replayer may have finished and deleted it in between).

Acknowledgements are appended to the file itself as ``#ack <n>`` lines ("the first
``n`` entries of this file are delivered"), fsync'd before ``ack`` returns; the file is
deleted once everything in it is acknowledged. There is no rewrite: an ack costs one
small write and one fsync, whatever the file's size, and no temporary file can be left
behind or lose entries. Only newline-terminated lines count: the torn last line of a
writer killed mid-append (whose ``append`` never returned) is cut off when the file is
claimed, before any ack is appended. So, at any crash point, an appended entry is never
lost and an acknowledged one is never sent again; only an entry whose ack was being
written at the moment of the crash may be sent twice, which the server's idempotent
``event_id`` absorbs.

``max_bytes`` caps the directory's size (acknowledged entries of a partly replayed file
count until the file is deleted). Writers in several processes each see the others'
files, re-measured at most every second, so the cap may be overshot briefly by
concurrent writers. ``fork()`` is safe: the child forgets the parent's open files (without
unlocking them) and writes under a lineage of its own.

Needs POSIX ``flock`` on a local file system; on Windows, ``Spool()`` raises ``OSError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import secrets
import sys
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger("local_telemetry")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 1024 * 1024
_PREFIX = "spool-"
_SUFFIX = ".jsonl"
_TEMPORARY_PREFIX = ".new-"
_ACK = b"#ack "
_STALE_TEMPORARY_SECONDS = 60.0  # a file still unnamed after this long lost its creator
_USAGE_REFRESH_SECONDS = 1.0


def default_spool_root() -> Path:
    """Where spools live: ``TELEMETRY_SPOOL_DIR``, else the user cache directory.

    That is ``$XDG_CACHE_HOME/local-telemetry/spool`` when ``XDG_CACHE_HOME`` is an
    absolute path, else ``~/.cache/local-telemetry/spool``.

    >>> Spool(default_spool_root(), "http://localhost:8765")  # doctest: +SKIP
    """
    configured = os.environ.get("TELEMETRY_SPOOL_DIR")
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache) if cache and os.path.isabs(cache) else Path.home() / ".cache"
    return base / "local-telemetry" / "spool"


def spool_directory(root: str | os.PathLike[str], api_url: str) -> Path:
    """The directory that holds the spool of ``api_url`` under ``root``."""
    digest = hashlib.sha256(api_url.rstrip("/").encode("utf-8")).hexdigest()
    return Path(root) / digest[:16]


class Spool:
    """A durable, multi-process-safe queue of JSON objects for one server.

    ``append`` never raises on I/O errors (it logs them and returns how many items it
    wrote); ``claim`` gives the oldest claimable file as a :class:`SpoolBatch`.

    >>> spool = Spool(tmp_path, "http://localhost:8765")  # doctest: +SKIP
    >>> spool.append([{"event_id": "a"}, {"event_id": "b"}])  # doctest: +SKIP
    2
    >>> batch = spool.claim()  # doctest: +SKIP
    >>> batch.items  # doctest: +SKIP
    [{'event_id': 'a'}, {'event_id': 'b'}]
    >>> batch.ack(2)  # delivered: the file is deleted  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        api_url: str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        """Open (creating it if needed) the spool of ``api_url`` under ``root``.

        Raises ``OSError`` when the directory cannot be created, or on Windows.
        """
        if sys.platform == "win32":
            raise OSError("the telemetry spool needs POSIX file locks (fcntl.flock)")
        self.directory = spool_directory(os.path.abspath(root), api_url)
        self.max_bytes = max_bytes
        self.max_file_bytes = max_file_bytes
        self._lock = threading.Lock()
        self._writer: _SpoolFile | None = None
        self._lineage = _new_lineage()
        self._last_stamp = 0
        self._usage: int | None = None
        self._usage_measured = 0.0
        self._full = False
        _make_directory(self.directory)
        _live_spools.add(self)

    def append(self, items: list[dict[str, Any]]) -> int:
        """Durably append ``items`` in order; return how many were written (a prefix).

        Fewer than ``len(items)`` means the size cap was reached or the disk failed (the
        rest are not stored: the caller counts them as dropped). Items must be
        JSON-serializable (``TypeError``/``ValueError`` otherwise, before anything is
        written).
        """
        lines = [json.dumps(item, separators=(",", ":")).encode() + b"\n" for item in items]
        if not lines:
            return 0
        with self._lock:
            try:
                count = self._count_fitting(lines)
                if count == 0:
                    return 0
                data = b"".join(lines[:count])
                self._writer_for(len(data)).append(data)
            except OSError as exc:
                logger.warning(
                    "telemetry spool: could not write %d item(s) in %s: %s",
                    len(lines),
                    self.directory,
                    exc,
                )
                self._close_writer()  # the next append starts a fresh file
                self._usage = None
                return 0
            if self._usage is not None:
                self._usage += len(data)
            return count

    def claim(self) -> SpoolBatch | None:
        """Lock the oldest claimable spool file and read it; ``None`` when there is none.

        Files locked by a live writer or by another replayer are skipped, with the later
        files of the same writer. The caller must ``ack`` or ``release`` the batch.
        """
        with self._lock:
            self._close_writer()  # our own pending items become claimable
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("telemetry spool: cannot list %s: %s", self.directory, exc)
            return None
        self._remove_abandoned_temporary_files(names)
        busy_lineages: set[str] = set()
        for name in names:
            lineage = _lineage_of(name)
            if lineage is None or lineage in busy_lineages:
                continue
            try:
                outcome = _claim_file(self.directory / name)
            except OSError as exc:
                logger.warning("telemetry spool: cannot replay %s: %s", name, exc)
                outcome = _BUSY  # keep that writer's order: do not skip past its file
            if outcome is _BUSY:
                busy_lineages.add(lineage)
            elif isinstance(outcome, SpoolBatch):
                return outcome
        return None

    def pending_count(self) -> int:
        """How many appended items are not acknowledged yet, over all files and writers."""
        total = 0
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        for name in names:
            if _lineage_of(name) is None:
                continue
            try:
                data = (self.directory / name).read_bytes()
            except FileNotFoundError:
                continue  # replayed and deleted meanwhile
            total += len(_parse(data).entries)
        return total

    def close(self) -> None:
        """Close this object's open file (its items stay in the spool for replay)."""
        with self._lock:
            self._close_writer()

    # ----- writing -----

    def _count_fitting(self, lines: list[bytes]) -> int:
        wanted = sum(len(line) for line in lines)
        now = time.monotonic()
        usage = self._usage
        if (
            usage is None
            or now - self._usage_measured > _USAGE_REFRESH_SECONDS
            or usage + wanted > self.max_bytes  # others may have replayed: measure again
        ):
            usage = self._usage = _directory_size(self.directory)
            self._usage_measured = now
        room = self.max_bytes - usage
        count = 0
        for line in lines:
            if len(line) > room:
                break
            room -= len(line)
            count += 1
        if count < len(lines) and not self._full:
            logger.warning(
                "telemetry spool %s is full (%d bytes): dropping items", self.directory, usage
            )
        elif count == len(lines) and self._full:
            logger.info("telemetry spool %s accepts items again", self.directory)
        self._full = count < len(lines)
        return count

    def _writer_for(self, size: int) -> _SpoolFile:
        writer = self._writer
        if writer is not None and (
            (writer.size > 0 and writer.size + size > self.max_file_bytes) or writer.unlinked()
        ):
            self._close_writer()
            writer = None
        if writer is None:
            writer = self._writer = self._create_file()
        return writer

    def _create_file(self) -> _SpoolFile:
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
        name = f"{_PREFIX}{self._last_stamp:020d}-{self._lineage}{_SUFFIX}"
        _make_directory(self.directory)
        temporary = self.directory / (_TEMPORARY_PREFIX + name)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        spool_file = _SpoolFile(os.open(temporary, flags, 0o600), 0)
        try:
            fcntl.flock(spool_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temporary, self.directory / name)  # visible only once locked
            _fsync_directory(self.directory)
        except BaseException:
            spool_file.close()
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return spool_file

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()  # closing the descriptor releases the flock
            self._writer = None

    def _remove_abandoned_temporary_files(self, names: list[str]) -> None:
        for name in names:
            if not name.startswith(_TEMPORARY_PREFIX):
                continue
            path = self.directory / name
            try:
                if time.time() - path.stat().st_mtime < _STALE_TEMPORARY_SECONDS:
                    continue
                with _SpoolFile(os.open(path, os.O_RDONLY | os.O_CLOEXEC), 0) as stale:
                    fcntl.flock(stale.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    path.unlink()
            except OSError:
                continue  # gone, or its creator is still alive

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's file without unlocking it, new lineage."""
        self._lock = threading.Lock()
        if self._writer is not None:
            self._writer.close()  # the parent's descriptor keeps the lock
            self._writer = None
        self._lineage = _new_lineage()
        self._usage = None


class SpoolBatch:
    """One claimed (locked) spool file: its unacknowledged items, in order.

    Call ``ack(n)`` as items are delivered and ``release()`` to give the rest back; it is
    also a context manager that releases on exit.
    """

    def __init__(self, path: Path, spool_file: _SpoolFile, entries: list[_Entry]) -> None:
        self.path = path
        self.items: list[dict[str, Any]] = [item for _, item in entries]
        self._line_numbers = [line_number for line_number, _ in entries]
        self._file: _SpoolFile | None = spool_file
        self._acknowledged = 0
        _live_batches.add(self)

    @property
    def closed(self) -> bool:
        """Whether the batch was released or fully acknowledged (the lock is gone)."""
        return self._file is None

    def ack(self, count: int) -> None:
        """The first ``count`` items of :attr:`items` were delivered: never send them again.

        Cumulative (``ack(3)`` then ``ack(5)`` acknowledges five); durable when it returns.
        Acknowledging every item deletes the file and releases the batch. If the disk
        fails, the failure is logged and the items may be replayed later (harmless: the
        server ignores a repeated ``event_id``).
        """
        if not 0 <= count <= len(self.items):
            raise ValueError(f"ack({count}) outside 0..{len(self.items)}")
        if count <= self._acknowledged:
            return
        spool_file = self._file
        if spool_file is None:
            raise RuntimeError("this spool batch was already released")
        record = _ACK + b"%d\n" % (self._line_numbers[count - 1] + 1)
        try:
            spool_file.append(record)
        except OSError as exc:
            logger.warning("telemetry spool: cannot record delivery in %s: %s", self.path, exc)
            return
        self._acknowledged = count
        if count == len(self.items):
            try:
                # Without a directory fsync a power cut may bring the file back: its last
                # ack line then says that nothing in it is left to send.
                self.path.unlink()
            except OSError as exc:
                logger.warning("telemetry spool: cannot delete %s: %s", self.path, exc)
            self.release()

    def release(self) -> None:
        """Unlock the file without deleting it; unacknowledged items stay for a later claim."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SpoolBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _forget_after_fork(self) -> None:
        """In a forked child: the batch belongs to the parent, whose lock must stay."""
        if self._file is not None:
            self._file.close()
            self._file = None


_Entry = tuple[int, dict[str, Any]]
"""An item and its line number among the file's entry lines (what ``#ack`` counts)."""


class _SpoolFile(io.FileIO):
    """An open spool file (closed, hence unlocked, even if dropped without ``close``)."""

    def __init__(self, descriptor: int, size: int) -> None:
        super().__init__(descriptor, "r+", closefd=True)
        self.size = size

    def append(self, data: bytes) -> None:
        """Write ``data`` at the end and fsync; on failure cut the file back and raise."""
        descriptor = self.fileno()
        try:
            view = memoryview(data)
            while view:  # the descriptor is O_APPEND: every write lands at the end
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        except OSError:
            with contextlib.suppress(OSError):  # no torn line before the next append
                os.ftruncate(descriptor, self.size)
            raise
        self.size += len(data)

    def unlinked(self) -> bool:
        """Whether the file was deleted from under us (e.g. the spool directory removed)."""
        return os.fstat(self.fileno()).st_nlink == 0


class _BusyMarker:
    pass


_BUSY = _BusyMarker()


class _Parsed:
    """What a spool file holds: unacknowledged entries and the end of its last full line."""

    def __init__(self, entries: list[_Entry], complete_length: int) -> None:
        self.entries = entries
        self.complete_length = complete_length


def _parse(data: bytes) -> _Parsed:
    complete_length = data.rfind(b"\n") + 1  # a line without its newline is torn
    entry_lines: list[bytes] = []
    acknowledged = 0
    for line in data[:complete_length].split(b"\n")[:-1]:
        if line.startswith(_ACK):
            try:
                acknowledged = max(acknowledged, int(line[len(_ACK) :]))
            except ValueError:
                continue
        else:
            entry_lines.append(line)
    entries: list[_Entry] = []
    garbled = 0
    for line_number in range(acknowledged, len(entry_lines)):
        try:
            item = json.loads(entry_lines[line_number])
        except ValueError:
            item = None
        if isinstance(item, dict):
            entries.append((line_number, item))
        else:
            garbled += 1
    if garbled:
        logger.warning("telemetry spool: %d unreadable line(s) skipped", garbled)
    return _Parsed(entries, complete_length)


def _claim_file(path: Path) -> SpoolBatch | _BusyMarker | None:
    """Lock and read one file: a batch, ``_BUSY`` if locked, ``None`` if nothing is left."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # replayed and deleted since the listing
    spool_file = _SpoolFile(descriptor, 0)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            spool_file.close()
            return _BUSY
        # Between open() and flock() another replayer may have finished and deleted it.
        try:
            named = os.stat(path)
        except FileNotFoundError:
            spool_file.close()
            return None
        opened = os.fstat(descriptor)
        if (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
            spool_file.close()
            return None
        data = spool_file.readall()
        parsed = _parse(data)
        spool_file.size = parsed.complete_length
        if parsed.complete_length < len(data):
            # Its writer died mid-append (that append never returned): drop the torn tail
            # so that the ack lines written next start on a line of their own.
            logger.info("telemetry spool: dropping a torn last line in %s", path)
            os.ftruncate(descriptor, parsed.complete_length)
            os.fsync(descriptor)
        if not parsed.entries:
            path.unlink()
            spool_file.close()
            return None
        return SpoolBatch(path, spool_file, parsed.entries)
    except BaseException:
        spool_file.close()
        raise


def _lineage_of(name: str) -> str | None:
    """``<pid>-<random>`` of a spool file name, ``None`` for anything else."""
    if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)):
        return None
    stamp, _, lineage = name[len(_PREFIX) : -len(_SUFFIX)].partition("-")
    return lineage if stamp.isdigit() and lineage else None


def _new_lineage() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _directory_size(directory: Path) -> int:
    total = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return 0
    return total


def _make_directory(directory: Path) -> None:
    """Create ``directory`` and missing parents (private to the user), each one durable."""
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_live_spools: weakref.WeakSet[Spool] = weakref.WeakSet()
_live_batches: weakref.WeakSet[SpoolBatch] = weakref.WeakSet()


def _forget_parent_files() -> None:
    for spool in list(_live_spools):
        spool._forget_after_fork()
    for batch in list(_live_batches):
        batch._forget_after_fork()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forget_parent_files)
