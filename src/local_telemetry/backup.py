"""Consistent copies of a SQLite store: online backup and restore.

``backup_database`` copies a database that a server may be writing to at that very
moment into one self-contained file; ``restore_database`` puts such a copy in place of a
stopped server's database and keeps the previous file (with its ``-wal``/``-shm``) aside.
Both write under a temporary name next to the target, fsync the file and its directory
and only then rename, so a crash leaves either the old file or the complete new one.
The command line (``cli/backup.py``) only turns their results and errors into output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from local_telemetry.storage.migrations.sqlite import MIGRATIONS
from local_telemetry.storage.sqlite_lock import try_exclusive_lock

RUNS_TABLE = "agent_runs"
SCHEMA_TABLE = "local_telemetry_schema"
SIDECARS = ("-wal", "-shm")
BUSY_TIMEOUT_MS = 30_000


class BackupError(Exception):
    """The operation failed (exit status 1): nothing was put in place."""


class BadBackupArguments(BackupError):
    """The request itself is wrong (exit status 2): missing source, target exists, not
    a database of ours."""


class ServerRunning(BackupError):
    """A server holds the database open; restoring under it needs ``force``."""


@dataclass(frozen=True)
class BackupResult:
    """What :func:`backup_database` wrote."""

    source: Path
    path: Path
    bytes: int
    runs: int

    def to_dict(self) -> dict[str, object]:
        """The ``--json`` summary."""
        return {
            "source": str(self.source),
            "path": str(self.path),
            "bytes": self.bytes,
            "runs": self.runs,
            "integrity": "ok",
        }


@dataclass(frozen=True)
class RestoreResult:
    """What :func:`restore_database` did."""

    source: Path
    path: Path
    runs: int
    schema_version: int
    previous: Path | None
    """Where the replaced database went (``None``: there was none)."""
    previous_sidecars: tuple[Path, ...]

    def to_dict(self) -> dict[str, object]:
        """The ``--json`` summary."""
        return {
            "source": str(self.source),
            "path": str(self.path),
            "runs": self.runs,
            "schema_version": self.schema_version,
            "previous": str(self.previous) if self.previous else None,
            "previous_sidecars": [str(p) for p in self.previous_sidecars],
            "integrity": "ok",
        }


def sqlite_uri(path: Path, options: str) -> str:
    """A ``file:`` URI for ``path`` (``?``, ``#`` and ``%`` in names escaped) + ``options``."""
    return f"file:{quote(str(path.absolute()))}?{options}"


def _temp_next_to(path: Path) -> Path:
    # Same directory: the final rename stays on one file system, hence atomic.
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove_with_sidecars(path: Path) -> None:
    for suffix in ("", *SIDECARS, "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_directory(path: Path) -> None:
    """Flush ``path``'s entries (a rename is durable only after this)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _make_self_contained(conn: sqlite3.Connection) -> None:
    """Leave the copy as one file that needs no ``-wal``.

    The backup copies page 1 as it is, with the source's "WAL mode" header bytes; in
    rollback-journal mode (DELETE) the header says so and every page lives in the main
    file. The server switches its database back to WAL when it opens it.
    """
    mode = str(conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]).lower()
    if mode != "delete":
        raise BackupError(f"could not take the copy out of WAL mode (journal_mode {mode})")


def _integrity(conn: sqlite3.Connection) -> str:
    rows = conn.execute("PRAGMA integrity_check").fetchall()
    return "\n".join(str(row[0]) for row in rows)


def _count_runs(conn: sqlite3.Connection) -> int:
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {RUNS_TABLE}").fetchone()[0])
    except sqlite3.OperationalError:  # a database no server has migrated yet
        return 0


def backup_database(source: Path, target: Path, *, force: bool = False) -> BackupResult:
    """Copy the SQLite database ``source`` into ``target`` while servers keep writing.

    Raises :class:`BadBackupArguments` when ``source`` is missing or ``target`` exists
    (and not ``force``), :class:`BackupError` when the copy fails its integrity check
    (the copy is deleted then).
    """
    if not source.is_file():
        raise BadBackupArguments(f"no SQLite database at {source}")
    if target.is_dir():
        raise BadBackupArguments(f"{target} is a directory; give the backup file's name")
    if target.exists() and not force:
        raise BadBackupArguments(f"{target} exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        raise BadBackupArguments(f"directory {target.parent} does not exist")
    if target.resolve() == source.resolve():
        raise BadBackupArguments("the backup cannot overwrite the database it copies")
    temp = _temp_next_to(target)
    try:
        # mode=rw: never create a database where none is (a typo in the path).
        src = sqlite3.connect(sqlite_uri(source, "mode=rw"), uri=True, timeout=30)
        try:
            src.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            dst = sqlite3.connect(temp, isolation_level=None)
            try:
                # The backup API, not VACUUM INTO: it copies the pages exactly as they are
                # (auto_vacuum mode, page size, free pages kept for later writes) and its
                # result is the same file the server had, just consistent. pages=-1 copies
                # everything in ONE step inside one read transaction, i.e. a snapshot of
                # the WAL database taken at its start; writers go on meanwhile. A stepwise
                # backup (pages > 0) starts over whenever another process commits between
                # steps, so under a steady write load it might never finish. (In a
                # rollback-journal mode the same read lock holds writers off meanwhile.)
                src.backup(dst, pages=-1)
                _make_self_contained(dst)
                result = _integrity(dst)
                if result != "ok":
                    raise BackupError(f"the copy failed PRAGMA integrity_check: {result[:500]}")
                runs = _count_runs(dst)
            finally:
                dst.close()
        finally:
            src.close()
        for suffix in SIDECARS:
            if Path(f"{temp}{suffix}").exists():
                raise BackupError(f"the copy left a {suffix} file behind; it is not self-contained")
        fsync_file(temp)
        os.replace(temp, target)
        fsync_directory(target.parent)
    except sqlite3.Error as exc:
        _remove_with_sidecars(temp)
        raise BackupError(f"copying {source} failed: {exc}") from exc
    except BaseException:
        _remove_with_sidecars(temp)
        raise
    return BackupResult(source=source, path=target, bytes=target.stat().st_size, runs=runs)


def check_backup_file(path: Path) -> tuple[int, int]:
    """Verify ``path`` is a healthy Local Telemetry SQLite database; return its run count
    and schema version. Raises :class:`BadBackupArguments` otherwise.

    Opened read-only and as immutable: a check must not change the file or create
    ``-wal``/``-shm`` files next to it.
    """
    if not path.is_file():
        raise BadBackupArguments(f"no file at {path}")
    with path.open("rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise BadBackupArguments(f"{path} is not a SQLite database")
    conn = sqlite3.connect(sqlite_uri(path, "mode=ro&immutable=1"), uri=True)
    try:
        tables = {
            str(row[0])
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if RUNS_TABLE not in tables or SCHEMA_TABLE not in tables:
            raise BadBackupArguments(
                f"{path} is a SQLite database but not a Local Telemetry one "
                f"(no {RUNS_TABLE} or {SCHEMA_TABLE} table)"
            )
        version = int(conn.execute(f"SELECT MAX(version) FROM {SCHEMA_TABLE}").fetchone()[0] or 0)
        newest = max(number for number, _, _ in MIGRATIONS)
        if version > newest:
            raise BadBackupArguments(
                f"{path} has schema version {version}, newer than this local-telemetry "
                f"knows ({newest}); restore it with the version that wrote it"
            )
        result = _integrity(conn)
        if result != "ok":
            raise BadBackupArguments(f"{path} failed PRAGMA integrity_check: {result[:500]}")
        return _count_runs(conn), version
    except sqlite3.DatabaseError as exc:
        raise BadBackupArguments(f"{path} is not a usable SQLite database: {exc}") from exc
    finally:
        conn.close()


def aside_name(db_path: Path, now: datetime | None = None) -> Path:
    """``<db>.before-restore-<UTC yyyymmddThhmmssZ>``, where a restore moves the old file."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    aside = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
    number = 1
    while any(Path(f"{aside}{suffix}").exists() for suffix in ("", *SIDECARS)):
        number += 1  # two restores within one second: never overwrite an earlier one
        aside = db_path.with_name(f"{db_path.name}.before-restore-{stamp}-{number}")
    return aside


def _set_journal_mode(path: Path, journal_mode: str) -> None:
    """Put the copy in the server's journal mode (a backup is in DELETE mode), so the
    restored file looks like the server's before its first start, too."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    finally:
        conn.close()  # the last connection of a WAL database removes its -wal and -shm
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise BackupError(f"{wal} still holds pages after closing the copy")
    for suffix in SIDECARS:  # empty leftovers: an index (-shm) and an empty log
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _fold_wal(db_path: Path) -> None:
    """Checkpoint ``db_path``'s WAL into the file and empty it, so the file alone holds
    every committed transaction (only while no server has it open)."""
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _put_back(previous: Path | None, moved: list[tuple[Path, Path]], db_path: Path) -> None:
    """Undo a restore that failed before its replace: sidecars back, the extra name
    gone (``db_path`` itself was never touched before the replace)."""
    for sidecar, aside in reversed(moved):
        with contextlib.suppress(OSError):
            os.rename(aside, sidecar)
    if previous is not None and db_path.exists() and previous.exists():
        with contextlib.suppress(OSError):
            if os.path.samefile(previous, db_path):
                previous.unlink()


def restore_database(
    backup: Path, db_path: Path, *, force: bool = False, journal_mode: str = "WAL"
) -> RestoreResult:
    """Replace the database ``db_path`` with the backup file ``backup``.

    Raises :class:`BadBackupArguments` when ``backup`` is no healthy database of ours,
    :class:`ServerRunning` when a server holds ``db_path`` (unless ``force``),
    :class:`BackupError` when copying or renaming fails (the current database is then
    where it was). Crash-safe: ``db_path`` names a whole database at every moment, the
    old one (its WAL folded in first) until one atomic replace makes it the new one.
    """
    runs, version = check_backup_file(backup)
    if backup.resolve() == db_path.resolve():
        raise BadBackupArguments("the backup is the database itself; nothing to restore")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # Held from here to the final rename, so no server starts on the file in between.
    lock = try_exclusive_lock(db_path)
    if lock is None and not force:
        raise ServerRunning(
            f"a server is running on {db_path}; stop it first, or pass --force to replace "
            "the file under it (that server keeps writing to the old file)"
        )
    temp = _temp_next_to(db_path)
    previous: Path | None = None
    moved: list[tuple[Path, Path]] = []
    try:
        shutil.copyfile(backup, temp)
        _set_journal_mode(temp, journal_mode)
        fsync_file(temp)
        if db_path.exists():
            if lock is not None:  # nobody has it open: fold its WAL into the file first
                _fold_wal(db_path)
            previous = aside_name(db_path)
            # A second name for the old file: db_path always names a whole database,
            # the old one until the atomic replace below, then the restored one.
            os.link(db_path, previous)
        # A stale -wal next to the restored file would be replayed into it; the old one
        # belongs to the old file, so it goes along (and opens with it).
        for suffix in SIDECARS:
            sidecar = Path(f"{db_path}{suffix}")
            if not sidecar.exists():
                continue
            if previous is None:  # left by a database someone deleted by hand
                sidecar.unlink()
                continue
            aside = Path(f"{previous}{suffix}")
            os.rename(sidecar, aside)
            moved.append((sidecar, aside))
        os.replace(temp, db_path)
        fsync_directory(db_path.parent)
    except (OSError, sqlite3.Error) as exc:
        _remove_with_sidecars(temp)
        _put_back(previous, moved, db_path)
        raise BackupError(
            f"restoring into {db_path} failed: {exc}; the database there is unchanged"
        ) from exc
    except BaseException:
        _remove_with_sidecars(temp)
        _put_back(previous, moved, db_path)
        raise
    finally:
        if lock is not None:
            lock.release()
    return RestoreResult(
        source=backup,
        path=db_path,
        runs=runs,
        schema_version=version,
        previous=previous,
        previous_sidecars=tuple(aside for _, aside in moved),
    )
