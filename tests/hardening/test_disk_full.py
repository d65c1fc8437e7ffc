"""Disk full: writes get 507 with a clear message, nothing acknowledged is lost, and
the server takes writes again as soon as space returns.

"Full" is a file-size limit (``RLIMIT_FSIZE``) set on the running server with
``prlimit --pid``: it needs no privileges or mounts, and raising it again is "space
returns". Python ignores SIGXFSZ, so a write beyond the limit fails with EFBIG, which
SQLite reports as "database or disk is full".
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from support import ServerProcess, StartServer, new_run, query

pytestmark = [
    pytest.mark.sqlite_only,
    pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux prlimit"),
]

HEADROOM_BYTES = 256 * 1024
PAYLOAD = "x" * 16 * 1024  # fills the little headroom in a few dozen writes
MAX_WRITES_TO_FILL = 2000


def _set_file_size_limit(server: ServerProcess, limit: str) -> None:
    """Set the soft limit only: with the hard limit kept, anyone may raise it again."""
    assert server.process is not None
    command = ["prlimit", f"--pid={server.process.pid}", f"--fsize={limit}:unlimited"]
    subprocess.run(command, check=True, timeout=10)


def _largest_file(db_path: Path) -> int:
    files = [db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")]
    return max(os.path.getsize(path) for path in files if path.exists())


def _storage_refused(response: httpx.Response) -> bool:
    if response.status_code not in (503, 507):
        return False
    assert response.headers["retry-after"].isdigit()
    assert response.json()["detail"].startswith("Storage full: ")
    return True


def test_disk_full_answers_507_keeps_acked_writes_and_recovers(
    start_server: StartServer,
) -> None:
    server = start_server()
    agent = f"full-{uuid.uuid4().hex[:8]}"
    acked: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as api:
        for _ in range(20):
            run = new_run(agent_name=agent, input_summary=PAYLOAD)
            assert api.post("/api/v1/runs", json=run).status_code == 201
            acked.append(run["event_id"])

        _set_file_size_limit(server, str(_largest_file(server.db_path) + HEADROOM_BYTES))
        refused = None
        for _ in range(MAX_WRITES_TO_FILL):
            run = new_run(agent_name=agent, input_summary=PAYLOAD)
            response = api.post("/api/v1/runs", json=run)
            if response.status_code == 201:
                acked.append(run["event_id"])
                continue
            refused = response
            break
        assert refused is not None, "the file-size limit never filled up"
        assert refused.status_code == 507, refused.text
        assert _storage_refused(refused)

        # Full: every kind of write is refused cleanly, the server stays up and reads work.
        first = acked[0]
        batch = [new_run(agent_name=agent, input_summary=PAYLOAD) for _ in range(5)]
        assert _storage_refused(api.post("/api/v1/runs/batch", json=batch))
        patch = {"status": "success", "output_summary": PAYLOAD}
        assert _storage_refused(api.patch(f"/api/v1/runs/{first}", json=patch))
        assert api.get(f"/api/v1/runs/{first}").json()["status"] == "running"
        health = api.get("/health")
        assert health.status_code == 200
        assert health.json()["writable"] is False
        assert health.json()["storage_error"].startswith("Storage full: ")
        assert server.process is not None
        assert server.process.poll() is None

        # Space returns: the very next write is stored.
        _set_file_size_limit(server, "unlimited")
        run = new_run(agent_name=agent, input_summary=PAYLOAD)
        assert api.post("/api/v1/runs", json=run).status_code == 201
        acked.append(run["event_id"])
        assert api.patch(f"/api/v1/runs/{first}", json=patch).status_code == 200
        assert api.get("/health").json()["writable"] is True
        assert api.get(f"/api/v1/runs/{first}").json()["status"] == "success"

    server.stop()
    stored = query(server, "SELECT event_id FROM agent_runs WHERE agent_name = ?", [agent])
    assert set(acked) <= {row[0] for row in stored}
    refused_ids = {run["event_id"] for run in batch}
    assert not refused_ids & {row[0] for row in stored}  # nothing refused half-stored
    with closing(sqlite3.connect(server.db_path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
