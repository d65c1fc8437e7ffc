"""Helpers for tests: a real server process on a free port, valid run bodies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

STARTUP_SECONDS = 30


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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        env = {
            **os.environ,
            "TELEMETRY_DB_PATH": str(self.db_path),
            "TELEMETRY_API_HOST": "127.0.0.1",
            "TELEMETRY_API_PORT": str(self.port),
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
