"""``backup`` and ``restore``: copies of the SQLite database, made and put back.

Both work on the files the server's settings name (``TELEMETRY_DB_PATH`` /
``TELEMETRY_DATABASE_URL``), not through the API; the logic is in
:mod:`local_telemetry.backup`. On PostgreSQL they point to ``pg_dump``/``pg_restore``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from local_telemetry.cli.remote import EXIT_BAD_ARGUMENTS, EXIT_FAILED, JsonOption, fail, print_json
from local_telemetry.cli.root import app
from local_telemetry.config import ConfigurationError, Settings, load_settings

DbPathOption = Annotated[
    Path | None,
    typer.Option(
        "--db-path",
        help="SQLite database file [TELEMETRY_DB_PATH / TELEMETRY_DATABASE_URL].",
        show_default=False,
    ),
]
PG_DUMP = 'pg_dump --format=custom --file=PATH "$TELEMETRY_DATABASE_URL"'
PG_RESTORE = 'pg_restore --clean --if-exists --dbname="$TELEMETRY_DATABASE_URL" PATH'


def _sqlite_settings(db_path: Path | None, command: str) -> Settings:
    """The settings (``--db-path`` wins over both variables); exit 2 on PostgreSQL."""
    overrides: dict[str, object] = {}
    if db_path is not None:
        overrides = {"db_path": db_path, "database_url": None}
    try:
        settings = load_settings(**overrides)
    except ConfigurationError as exc:
        fail(str(exc), EXIT_BAD_ARGUMENTS)
    if settings.uses_postgres:
        fail(
            f"{command} copies SQLite databases; TELEMETRY_DATABASE_URL names PostgreSQL, "
            f"use PostgreSQL's own tools: back up with {PG_DUMP}, restore with {PG_RESTORE}",
            EXIT_BAD_ARGUMENTS,
        )
    return settings


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


@app.command()
def backup(
    path: Annotated[Path, typer.Argument(help="The backup file to write.", show_default=False)],
    db_path: DbPathOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite PATH if it exists.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Copy the SQLite database into one self-contained file while the server runs.

    The copy is a consistent snapshot (SQLite's backup API, one step), checked with
    PRAGMA integrity_check, written under a temporary name next to PATH, fsynced and
    renamed into place. PATH must not exist unless --force. On PostgreSQL use
    pg_dump (the error says how). Exit status: 0 written, 1 copy failed, 2 bad
    arguments (PATH exists, no database, PostgreSQL settings).
    """
    from local_telemetry import backup as backups

    if str(path) == "-":
        fail("the backup must be a file (PATH '-' is not supported)", EXIT_BAD_ARGUMENTS)
    settings = _sqlite_settings(db_path, "backup")
    source = settings.sqlite_path
    try:
        result = backups.backup_database(source, path, force=force)
    except backups.BadBackupArguments as exc:
        fail(str(exc), EXIT_BAD_ARGUMENTS)
    except backups.BackupError as exc:
        fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        fail(f"writing {path} failed: {exc}", EXIT_FAILED)
    typer.echo(
        f"backup of {source} ({result.runs} runs, {_megabytes(result.bytes)}) written to "
        f"{path}, integrity ok",
        err=True,
    )
    if as_json:
        print_json(result.to_dict())


@app.command()
def restore(
    path: Annotated[Path, typer.Argument(help="The backup file to restore.", show_default=False)],
    db_path: DbPathOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Restore even while a server runs on the database."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Replace the SQLite database with a backup (stop the server first).

    PATH must be a Local Telemetry database that passes PRAGMA integrity_check. The
    current database is kept as <db>.before-restore-<UTC time> (its WAL folded in first;
    with --force its -wal and -shm go along), and the backup is copied into place
    (temporary name, fsync, one atomic rename). The server brings the schema up to date
    when it starts. Exit status: 0 restored, 1 a server is running on the database
    (stop it or pass --force) or the copy failed, 2 PATH is no database of ours or bad
    settings.
    """
    from local_telemetry import backup as backups

    settings = _sqlite_settings(db_path, "restore")
    target = settings.sqlite_path
    try:
        result = backups.restore_database(
            path, target, force=force, journal_mode=settings.db_journal_mode
        )
    except backups.BadBackupArguments as exc:
        fail(str(exc), EXIT_BAD_ARGUMENTS)
    except backups.ServerRunning as exc:
        fail(str(exc), EXIT_FAILED)
    except backups.BackupError as exc:
        fail(str(exc), EXIT_FAILED)
    typer.echo(
        f"restored {path} ({result.runs} runs, schema version {result.schema_version}) "
        f"into {target}",
        err=True,
    )
    if result.previous is not None:
        extra = ", ".join(p.name for p in result.previous_sidecars)
        typer.echo(
            f"the previous database is now {result.previous}"
            + (f" (with {extra})" if extra else ""),
            err=True,
        )
    else:
        typer.echo("there was no previous database", err=True)
    if as_json:
        print_json(result.to_dict())
