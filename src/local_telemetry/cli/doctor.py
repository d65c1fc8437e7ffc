"""``doctor``: check an installation and say what to do about each problem.

Every check is a small function in :data:`CHECKS` taking the :class:`Context` and
returning one :class:`Check` (or ``None`` when it does not apply, e.g. SQLite checks on
PostgreSQL); adding a check is one function and one line in the list.
"""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import typer

from local_telemetry import __version__
from local_telemetry.backup import sqlite_uri
from local_telemetry.cli.remote import (
    JsonOption,
    TokenOption,
    UrlOption,
    print_json,
    resolve_token,
    resolve_url,
)
from local_telemetry.cli.root import app
from local_telemetry.config import ConfigurationError, Settings, load_settings
from local_telemetry.storage.migrations.sqlite import MIGRATIONS

Status = Literal["ok", "warn", "fail"]

GIB = 1024**3
MIN_FREE_BYTES = GIB
MIN_FREE_FRACTION = 0.10
LARGE_WAL_BYTES = GIB
MIN_PYTHON = (3, 11)
# unixepoch() in migration 4's generated column needs 3.38.0 (RETURNING 3.35, generated
# columns 3.31 and upserts 3.24 are older); a server on an older library cannot migrate.
MIN_SQLITE = (3, 38, 0)
HTTP_TIMEOUT_SECONDS = 5.0
README_RETENTION = "README, section Retention"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        """The ``--json`` form."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}

    @classmethod
    def warn_if(cls, name: str, bad: bool, detail: str, fix: str) -> Check:
        """A warning with ``fix`` when ``bad``, else ``ok``; ``detail`` either way."""
        return cls(name, "warn", detail, fix) if bad else cls(name, "ok", detail)


@dataclass
class Context:
    """What the checks look at; settings are ``None`` when they do not load."""

    url: str
    token: str | None
    offline: bool
    settings: Settings | None = None
    settings_error: str | None = None
    health: dict[str, Any] | None = None
    server_error: str | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def sqlite(self) -> Settings | None:
        """The settings when they name a SQLite store."""
        if self.settings is None or self.settings.uses_postgres:
            return None
        return self.settings

    @property
    def db_path(self) -> Path:
        """The SQLite file (only meaningful when :attr:`sqlite` is set)."""
        assert self.settings is not None
        return self.settings.sqlite_path

    def open_db(self) -> sqlite3.Connection | None:
        """A connection to the existing database, never creating one (cached)."""
        if "db" not in self.cache:
            conn: sqlite3.Connection | None = None
            if self.sqlite is not None and self.db_path.is_file():
                try:
                    conn = sqlite3.connect(sqlite_uri(self.db_path, "mode=rw"), uri=True, timeout=5)
                    conn.execute("PRAGMA busy_timeout = 5000")
                    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                except sqlite3.Error as exc:
                    self.cache["db_error"] = str(exc)
                    conn = None
            self.cache["db"] = conn
        db: sqlite3.Connection | None = self.cache["db"]
        return db


CheckFunction = Callable[[Context], Check | None]


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - loop always returns


# ----- settings -----


def check_settings(ctx: Context) -> Check:
    """The TELEMETRY_* settings load."""
    if ctx.settings_error is not None:
        return Check(
            "settings",
            "fail",
            ctx.settings_error,
            "correct the TELEMETRY_* variable named (local-telemetry serve --help lists all)",
        )
    return Check("settings", "ok", "TELEMETRY_* settings load")


def check_backend(ctx: Context) -> Check | None:
    """Which store the settings name."""
    if ctx.settings is None:
        return None
    if ctx.settings.uses_postgres:
        return Check("backend", "ok", "PostgreSQL (TELEMETRY_DATABASE_URL)")
    return Check("backend", "ok", f"SQLite at {ctx.settings.sqlite_path.resolve()}")


# ----- SQLite -----


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_sqlite_directory(ctx: Context) -> Check | None:
    """The database's directory exists (or can be made) and this user can write in it."""
    if ctx.sqlite is None:
        return None
    directory = ctx.db_path.parent
    name = "sqlite.directory"
    fix = f"create {directory} and give the server's user write access to it"
    if not directory.exists():
        ancestor = _existing_ancestor(directory)
        if not ancestor.is_dir():
            return Check(name, "fail", f"{ancestor} is a file, not a directory", fix)
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return Check(name, "fail", f"{directory} is missing; {ancestor} is not writable", fix)
        return Check(name, "warn", f"{directory} does not exist yet", "the server creates it")
    if not directory.is_dir():
        return Check(name, "fail", f"{directory} is not a directory", fix)
    try:
        # A real file, not os.access: that says yes to root and ignores read-only mounts.
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        return Check(name, "fail", f"cannot create files in {directory}: {exc.strerror}", fix)
    return Check(name, "ok", f"{directory} is writable")


def check_sqlite_file(ctx: Context) -> Check | None:
    """The database file, if it exists, is readable and writable by this user."""
    if ctx.sqlite is None:
        return None
    path = ctx.db_path
    name = "sqlite.file"
    if not path.exists():
        return Check(
            name, "warn", f"{path} does not exist yet", "start the server once: it creates it"
        )
    if not path.is_file():
        return Check(name, "fail", f"{path} is not a file", "point TELEMETRY_DB_PATH at a file")
    if not os.access(path, os.R_OK | os.W_OK):
        return Check(
            name,
            "fail",
            f"{path} is not readable and writable by this user (uid {os.getuid()})",
            "run as the server's user, or chown/chmod the file and its -wal/-shm",
        )
    if ctx.open_db() is None:
        return Check(
            name,
            "fail",
            f"{path} does not open as a SQLite database: {ctx.cache.get('db_error')}",
            "restore a backup (local-telemetry restore)",
        )
    return Check(name, "ok", f"{path} ({_size(path.stat().st_size)}) is readable and writable")


def check_journal_mode(ctx: Context) -> Check | None:
    """The database is in WAL mode (readers never block the writer)."""
    conn = ctx.open_db()
    if conn is None:
        return None
    mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if mode == "wal":
        return Check("sqlite.journal_mode", "ok", "wal")
    return Check(
        "sqlite.journal_mode",
        "warn",
        f"{mode} (readers and the writer wait for each other)",
        "unset TELEMETRY_DB_JOURNAL_MODE (default WAL) and restart the server",
    )


def check_quick_check(ctx: Context) -> Check | None:
    """``PRAGMA quick_check`` finds no corruption."""
    conn = ctx.open_db()
    if conn is None:
        return None
    rows = conn.execute("PRAGMA quick_check").fetchall()
    result = "; ".join(str(row[0]) for row in rows)
    if result == "ok":
        return Check("sqlite.quick_check", "ok", "ok")
    return Check(
        "sqlite.quick_check",
        "fail",
        result[:300],
        "stop the server and restore the latest backup (local-telemetry restore PATH)",
    )


def check_schema(ctx: Context) -> Check | None:
    """The schema version recorded in ``local_telemetry_schema`` is this version's."""
    conn = ctx.open_db()
    if conn is None:
        return None
    newest = max(number for number, _, _ in MIGRATIONS)
    name = "sqlite.schema"
    # Read only: migrations.applied_version() would create the table.
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'local_telemetry_schema'"
    ).fetchone()
    if has_table is None:
        return Check(
            name,
            "warn",
            "no schema version recorded (new or foreign database)",
            "start the server: it creates or adopts the schema",
        )
    version = int(
        conn.execute("SELECT MAX(version) FROM local_telemetry_schema").fetchone()[0] or 0
    )
    if version == newest:
        return Check(name, "ok", f"version {version} (current)")
    if version < newest:
        return Check(
            name,
            "warn",
            f"version {version}, this local-telemetry's is {newest}",
            "restart the server: it applies the pending migrations at start",
        )
    return Check(
        name,
        "fail",
        f"version {version} is newer than this local-telemetry knows ({newest})",
        "upgrade local-telemetry to the version that wrote the database",
    )


def check_auto_vacuum(ctx: Context) -> Check | None:
    """Whether retention can give freed pages back to the file system."""
    conn = ctx.open_db()
    if conn is None or ctx.settings is None:
        return None
    mode = {0: "none", 1: "full", 2: "incremental"}.get(
        int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]), "unknown"
    )
    retention = (
        ctx.settings.retention_payload_days is not None
        or ctx.settings.retention_run_days is not None
    )
    if mode == "none" and retention:
        return Check(
            "sqlite.auto_vacuum",
            "warn",
            "none: retention frees pages inside the file but the file never shrinks",
            f"stop the server, run sqlite3 {ctx.db_path} "
            f'"PRAGMA auto_vacuum = INCREMENTAL; VACUUM;" ({README_RETENTION})',
        )
    return Check("sqlite.auto_vacuum", "ok", mode)


def check_disk_space(ctx: Context) -> Check | None:
    """Free space on the database's file system."""
    if ctx.sqlite is None:
        return None
    where = _existing_ancestor(ctx.db_path.parent)
    usage = shutil.disk_usage(where)
    detail = f"{_size(usage.free)} free of {_size(usage.total)} on the file system of {where}"
    return Check.warn_if(
        "sqlite.disk_space",
        usage.free < MIN_FREE_BYTES or usage.free < usage.total * MIN_FREE_FRACTION,
        detail,
        "free space there (below 1 GiB or 10 % a full disk stops every write)",
    )


def check_wal_size(ctx: Context) -> Check | None:
    """Size of the ``-wal`` file (it grows while a long reader blocks checkpoints)."""
    if ctx.sqlite is None or not ctx.db_path.is_file():
        return None
    wal = Path(f"{ctx.db_path}-wal")
    size = wal.stat().st_size if wal.exists() else 0
    detail = f"{wal.name}: {_size(size)}" if wal.exists() else "no -wal file (server stopped)"
    return Check.warn_if(
        "sqlite.wal_size",
        size > LARGE_WAL_BYTES,
        detail,
        "a long-running reader keeps checkpoints from finishing; restart the server",
    )


# ----- PostgreSQL -----


def check_postgres(ctx: Context) -> Check | None:
    """The PostgreSQL database accepts a connection; its server version."""
    if ctx.settings is None or not ctx.settings.uses_postgres:
        return None
    import psycopg

    assert ctx.settings.database_url is not None
    try:
        with psycopg.connect(ctx.settings.database_url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        return Check(
            "postgres.connect",
            "fail",
            first_line,
            "check TELEMETRY_DATABASE_URL (host, port, user, password, database) "
            "and that PostgreSQL is running",
        )
    version = str(row[0]) if row else "unknown"
    return Check("postgres.connect", "ok", f"connected; PostgreSQL {version}")


# ----- the running server -----


def _get(ctx: Context, path: str) -> httpx.Response:
    # With auth on, everything but /health and the docs needs a key (reads too).
    headers = {"Authorization": f"Bearer {ctx.token}"} if ctx.token else {}
    return httpx.get(f"{ctx.url}{path}", headers=headers, timeout=HTTP_TIMEOUT_SECONDS)


def check_server_health(ctx: Context) -> Check | None:
    """The server answers ``GET /health`` at --url, serving this database."""
    if ctx.offline:
        return None
    name = "server.health"
    try:
        response = _get(ctx, "/health")
    except httpx.HTTPError as exc:
        ctx.server_error = f"{exc.__class__.__name__}: {exc}"
        return Check(
            name,
            "fail",
            f"no server at {ctx.url} ({ctx.server_error})",
            "start it (local-telemetry serve), set --url / TELEMETRY_API_URL, "
            "or pass --offline to check the files only",
        )
    if response.status_code != 200:
        ctx.server_error = f"HTTP {response.status_code}"
        return Check(
            name,
            "fail",
            f"GET {ctx.url}/health answered {response.status_code}",
            "read the server's log",
        )
    ctx.health = response.json()
    served = str(ctx.health.get("db_path", ""))
    detail = f"{ctx.url} is up ({ctx.health.get('backend')}: {served})"
    if ctx.sqlite is not None and served and Path(served) != ctx.db_path.resolve():
        return Check(
            name,
            "warn",
            f"{detail}, but these settings name {ctx.db_path.resolve()}",
            "run the CLI with the server's TELEMETRY_DB_PATH (backup/restore use it)",
        )
    return Check(name, "ok", detail)


def check_server_version(ctx: Context) -> Check | None:
    """The server runs the same local-telemetry version as this CLI."""
    if ctx.health is None:
        return None
    try:
        response = _get(ctx, "/version")
        if response.status_code in (401, 403):
            return Check(
                "server.version",
                "warn",
                f"GET /version answered {response.status_code}: auth is on and the CLI's "
                "token is missing or refused",
                "set TELEMETRY_API_TOKEN (see server.auth)",
            )
        served = str(response.json().get("server_version"))
    except (httpx.HTTPError, ValueError) as exc:
        return Check("server.version", "warn", f"GET /version failed: {exc}", "read the log")
    if served == __version__:
        return Check("server.version", "ok", f"server and CLI are {__version__}")
    return Check(
        "server.version",
        "warn",
        f"server {served}, CLI {__version__}",
        "restart the server after upgrading, or upgrade the CLI's installation",
    )


def _probe_write(ctx: Context, token: str | None) -> int:
    """Status of an empty run create: 401 when auth refuses, else 422 (nothing stored)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{ctx.url}/api/v1/runs", json={}, headers=headers, timeout=HTTP_TIMEOUT_SECONDS
    )
    return response.status_code


def check_server_auth(ctx: Context) -> Check | None:
    """When the server wants a key, whether the CLI has one that works (a ``read`` key
    is fine for reports; writes then get 403)."""
    if ctx.health is None:
        return None
    name = "server.auth"
    try:
        anonymous = _probe_write(ctx, None)
        if anonymous not in (401, 403):
            return Check(name, "ok", "auth disabled on the server")
        if ctx.token is None:
            return Check(
                name,
                "warn",
                "the server requires a key (reads too); none configured for the CLI",
                "set TELEMETRY_API_TOKEN (or pass --token to each command)",
            )
        with_token = _probe_write(ctx, ctx.token)
    except httpx.HTTPError as exc:
        return Check(name, "warn", f"could not probe auth: {exc}", "read the server's log")
    if with_token == 401:
        return Check(
            name,
            "fail",
            "the server refuses the configured token (unknown, revoked or expired key)",
            "set TELEMETRY_API_TOKEN to the server's TELEMETRY_API_AUTH_TOKEN or an API key"
            " from `local-telemetry keys create`",
        )
    if with_token == 403:
        return Check(name, "ok", "auth enabled; the configured key is accepted for reads only")
    return Check(name, "ok", "auth enabled; the configured token is accepted")


# ----- runtime -----


def check_python(ctx: Context) -> Check:
    """This Python is new enough."""
    version = platform.python_version()
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", "ok", f"Python {version}")
    needed = ".".join(map(str, MIN_PYTHON))
    return Check("python", "fail", f"Python {version}", f"install Python {needed} or newer")


def check_sqlite_library(ctx: Context) -> Check:
    """The SQLite library can run our migrations (``unixepoch()``: 3.38.0)."""
    needed = ".".join(map(str, MIN_SQLITE))
    detail = f"SQLite {sqlite3.sqlite_version} (needs {needed})"
    if sqlite3.sqlite_version_info >= MIN_SQLITE:
        return Check("sqlite.library", "ok", detail)
    return Check(
        "sqlite.library",
        "fail",
        detail,
        f"use a Python built with SQLite {needed} or newer (e.g. the project's Docker image)",
    )


def check_cli_version(ctx: Context) -> Check:
    """This CLI's version (a line to quote in bug reports)."""
    return Check("version", "ok", f"local-telemetry {__version__}")


CHECKS: list[CheckFunction] = [
    check_cli_version,
    check_settings,
    check_backend,
    check_sqlite_directory,
    check_sqlite_file,
    check_journal_mode,
    check_quick_check,
    check_schema,
    check_auto_vacuum,
    check_disk_space,
    check_wal_size,
    check_postgres,
    check_server_health,
    check_server_version,
    check_server_auth,
    check_python,
    check_sqlite_library,
]


def run_checks(ctx: Context) -> list[Check]:
    """Every applicable check, in order; a check that crashes is reported as failed."""
    found: list[Check] = []
    for function in CHECKS:
        try:
            result = function(ctx)
        except Exception as exc:  # a broken check must not hide the others
            name = function.__name__.removeprefix("check_")
            result = Check(name, "fail", f"check crashed: {exc!r}", "report this as a bug")
        if result is not None:
            found.append(result)
    db = ctx.cache.get("db")
    if db is not None:
        db.close()
    return found


@app.command()
def doctor(
    url: UrlOption = None,
    token: TokenOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Skip the server checks (files and settings only).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check settings, database files, the running server and the runtime.

    One line per check: ok, warn or FAIL, and for each problem what to do. A server
    that does not answer at --url is a FAIL (the doctor is meant for the machine that
    serves); --offline skips the server checks. Exit status: 0 nothing failed
    (warnings allowed), 1 something failed.
    """
    ctx = Context(url=resolve_url(url), token=resolve_token(token), offline=offline)
    try:
        ctx.settings = load_settings()
    except ConfigurationError as exc:
        ctx.settings_error = str(exc)
    checks = run_checks(ctx)
    ok = all(check.status != "fail" for check in checks)
    if as_json:
        print_json({"checks": [check.to_dict() for check in checks], "ok": ok})
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            mark = {"ok": "ok", "warn": "warn", "fail": "FAIL"}[check.status]
            typer.echo(f"{mark:<4}  {check.name:<{width}}  {check.detail}")
            if check.fix:
                typer.echo(f"{'':<4}  {'':<{width}}  -> {check.fix}")
        failed = sum(check.status == "fail" for check in checks)
        warned = sum(check.status == "warn" for check in checks)
        typer.echo(f"{failed} failed, {warned} warnings", err=True)
    if not ok:
        raise typer.Exit(1)
