"""``local_telemetry.backup`` and the server lock, on real files."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from local_telemetry.api import create_app
from local_telemetry.backup import (
    BadBackupArguments,
    ServerRunning,
    aside_name,
    backup_database,
    check_backup_file,
    restore_database,
)
from local_telemetry.config import Settings
from local_telemetry.storage.migrations.sqlite import MIGRATIONS, migrate
from local_telemetry.storage.sqlite_lock import hold_server_lock, lock_path, try_exclusive_lock

pytestmark = pytest.mark.sqlite_only

CURRENT_VERSION = MIGRATIONS[-1][0]


def _database_with_runs(path: Path, count: int) -> sqlite3.Connection:
    """A migrated WAL database whose rows sit in the -wal only (no checkpoint)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    migrate(conn)
    for number in range(count):
        conn.execute(
            "INSERT INTO agent_runs (event_id, run_id, created_at, start_time, agent_name,"
            " job_type) VALUES (?, ?, '2026-01-12T10:00:00.000000Z',"
            " '2026-01-12T10:00:00.000000Z', 'agent', 'job')",
            (f"event-{number}", f"run-{number}"),
        )
    return conn


def test_shared_locks_coexist_and_exclude_the_exclusive_one(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.sqlite"
    first = hold_server_lock(db)
    second = hold_server_lock(db)
    assert lock_path(db) == tmp_path / "telemetry.sqlite.lock"
    assert try_exclusive_lock(db) is None
    first.release()
    assert try_exclusive_lock(db) is None  # the second server still serves
    second.release()
    second.release()  # idempotent
    exclusive = try_exclusive_lock(db)
    assert exclusive is not None
    assert try_exclusive_lock(db) is None
    exclusive.release()


def test_the_app_holds_the_server_lock_while_it_runs(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.sqlite"
    app = create_app(Settings(db_path=db, alert_interval_seconds=0))

    async def serve_briefly() -> None:
        async with app.router.lifespan_context(app):
            assert db.exists()  # started: migrated
            assert try_exclusive_lock(db) is None

    asyncio.run(serve_briefly())
    found = try_exclusive_lock(db)
    assert found is not None
    found.release()


def test_backup_copies_rows_still_in_the_wal_into_one_file(tmp_path: Path) -> None:
    source = tmp_path / "telemetry.sqlite"
    writer = _database_with_runs(source, 25)
    try:
        assert Path(f"{source}-wal").stat().st_size > 0
        target = tmp_path / "copy.sqlite"
        result = backup_database(source, target)
    finally:
        writer.close()
    assert result.runs == 25
    assert result.bytes == target.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == [
        "copy.sqlite"
    ]
    header = target.read_bytes()[18:20]
    assert header == b"\x01\x01"  # rollback-journal mode: no -wal belongs to this file
    assert check_backup_file(target) == (25, CURRENT_VERSION)


def test_backup_refuses_missing_source_and_existing_target(tmp_path: Path) -> None:
    with pytest.raises(BadBackupArguments, match="no SQLite database"):
        backup_database(tmp_path / "missing.sqlite", tmp_path / "copy.sqlite")
    source = tmp_path / "telemetry.sqlite"
    _database_with_runs(source, 1).close()
    target = tmp_path / "copy.sqlite"
    target.write_text("keep")
    with pytest.raises(BadBackupArguments, match="--force"):
        backup_database(source, target)
    assert target.read_text() == "keep"
    assert backup_database(source, target, force=True).runs == 1


def test_a_damaged_backup_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "telemetry.sqlite"
    _database_with_runs(source, 200).close()
    copy = tmp_path / "copy.sqlite"
    backup_database(source, copy)
    data = bytearray(copy.read_bytes())
    page = 4096
    data[3 * page : 5 * page] = b"\xff" * (2 * page)  # wreck two b-tree pages
    copy.write_bytes(bytes(data))
    with pytest.raises(BadBackupArguments):
        check_backup_file(copy)


def test_restore_refuses_while_the_lock_is_held_and_keeps_earlier_asides(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.sqlite"
    _database_with_runs(db, 3).close()
    backup = tmp_path / "backup.sqlite"
    backup_database(db, backup)
    with hold_server_lock(db), pytest.raises(ServerRunning):
        restore_database(backup, db)
    first = restore_database(backup, db)
    second = restore_database(backup, db)
    assert first.previous is not None
    assert second.previous is not None
    assert first.previous != second.previous  # same second: a numbered name, no overwrite
    for path in (db, first.previous, second.previous):
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM agent_runs").fetchone()[0] == 3


def test_aside_name_is_the_utc_time() -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    name = aside_name(Path("/nonexistent/dir/t.sqlite"), when)
    assert name == Path("/nonexistent/dir/t.sqlite.before-restore-20260304T050607Z")


def test_file_names_with_uri_characters_work(tmp_path: Path) -> None:
    source = tmp_path / "tele?metry#1%20.sqlite"
    _database_with_runs(source, 2).close()
    target = tmp_path / "copy #2?.sqlite"
    assert backup_database(source, target).runs == 2
    assert check_backup_file(target) == (2, CURRENT_VERSION)
    assert not (tmp_path / "tele").exists()  # the URI did not stop at '?'
