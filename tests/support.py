"""Helpers for tests: a real server process on a free port, valid run bodies."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

STARTUP_SECONDS = 30
BACKEND_VARIABLE = "LT_TEST_BACKEND"
BACKENDS = ("sqlite", "postgres")


def backend_under_test() -> str:
    """The backend of server processes started by tests: ``LT_TEST_BACKEND`` (sqlite)."""
    backend = os.environ.get(BACKEND_VARIABLE, "").strip().lower() or "sqlite"
    if backend not in BACKENDS:
        raise ValueError(f"{BACKEND_VARIABLE}={backend!r}: expected one of {', '.join(BACKENDS)}")
    return backend


DatabaseFor = Callable[[Path], str]
database_for: DatabaseFor | None = None
"""Installed by conftest on the postgres backend: db_path -> URL of its own database
(deterministic, so that a server restarted on the same db_path finds its data again)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A ``local-telemetry serve`` child process and how to reach it."""

    db_path: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    database_url: str | None = None
    """``TELEMETRY_DATABASE_URL`` for the process; on the postgres test backend, a
    database of this db_path's own unless ``env`` names one."""

    def __post_init__(self) -> None:
        if (
            self.database_url is None
            and "TELEMETRY_DATABASE_URL" not in self.env
            and database_for is not None
        ):
            self.database_url = database_for(self.db_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        env = {
            **os.environ,
            "TELEMETRY_DB_PATH": str(self.db_path),
            "TELEMETRY_API_HOST": "127.0.0.1",
            "TELEMETRY_API_PORT": str(self.port),
            **({"TELEMETRY_DATABASE_URL": self.database_url} if self.database_url else {}),
            **self.env,
        }
        self.log_path = self.db_path.with_suffix(f".{self.port}.log")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local_telemetry", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), falling back to SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def query(server: ServerProcess, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (``?`` placeholders, portable SQL) read straight from the
    server's database, without the API: its SQLite file (read-only) or its PostgreSQL
    database, whichever the server runs on."""
    url = server.database_url or server.env.get("TELEMETRY_DATABASE_URL")
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall()  # type: ignore[arg-type]
        return [tuple(row) for row in rows]
    path = url.removeprefix("sqlite:///") if url is not None else str(server.db_path)
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return [tuple(row) for row in conn.execute(sql, tuple(params)).fetchall()]


def table_columns(server: ServerProcess, table: str) -> list[str]:
    """The column names of ``table`` in the server's database, in table order."""
    url = server.database_url or server.env.get("TELEMETRY_DATABASE_URL")
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        sql = (
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position"
        )
        return [str(row[0]) for row in query(server, sql, [table])]
    return [str(row[1]) for row in query(server, f"PRAGMA table_info({table})")]


StartServer = Callable[..., ServerProcess]
"""The ``start_server`` fixture: ``start_server(db_path=None, **env)``."""


def new_run(**fields: Any) -> dict[str, Any]:
    """A valid create body with a fresh event_id and unique agent name; override freely."""
    tag = uuid.uuid4().hex[:12]
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "run_id": f"run-{tag}",
        "agent_name": f"agent-{tag}",
        "job_type": "test-job",
        "start_time": "2026-01-12T10:30:00Z",
    }
    body.update(fields)
    return body


def create_run(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    """Create a run (:func:`new_run` with ``fields``) and return it as the server stored it."""
    body = new_run(**fields)
    reply = api.post("/api/v1/runs", json=body)
    assert reply.status_code == 201, reply.text
    return fetch_run(api, body["event_id"])


def fetch_run(api: httpx.Client, event_id: str) -> dict[str, Any]:
    """The stored run ``event_id`` (asserting the server has it)."""
    reply = api.get(f"/api/v1/runs/{event_id}")
    assert reply.status_code == 200, reply.text
    run: dict[str, Any] = reply.json()
    return run


def stored_run(server: ServerProcess, event_id: str) -> dict[str, Any]:
    """The stored run ``event_id`` of ``server`` (asserting the server has it)."""
    with httpx.Client(base_url=server.url, timeout=10) as api:
        return fetch_run(api, event_id)


def store_row(event_id: str, **fields: Any) -> dict[str, Any]:
    """A minimal valid run row for Store tests (timestamps in the stored form)."""
    from local_telemetry.timestamps import normalize

    base: dict[str, Any] = {
        "event_id": event_id,
        "run_id": f"run-{event_id}",
        "agent_name": "agent-a",
        "job_type": "job-a",
        "start_time": normalize("2026-01-12T10:00:00Z"),
    }
    base.update(fields)
    return base
