"""The database made read-only under a running server: a clear 503 for writes, reads
keep working, ``/health`` says so, no crash; writable again -> writes work again.

Read-only is the immutable attribute (``chattr +i``) on the database file and its WAL:
it stops writes through descriptors SQLite already has open, as root too (``chmod``
does neither: root ignores modes and open descriptors keep their access). The
``-shm`` index is left alone: SQLite maps it, and an immutable mapping kills the
process with SIGBUS, which no server can answer.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest

from support import StartServer, new_run, query

pytestmark = pytest.mark.sqlite_only


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, timeout=10)


def _immutable_supported(directory: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        return False
    probe = directory / "chattr-probe"
    probe.touch()
    try:
        _chattr("+i", probe)
        _chattr("-i", probe)
    except subprocess.CalledProcessError:
        return False
    finally:
        probe.unlink()
    return True


@contextmanager
def _read_only(*paths: Path) -> Iterator[None]:
    _chattr("+i", *paths)
    try:
        yield
    finally:  # always: pytest must be able to delete tmp_path
        _chattr("-i", *paths)


def _refused(response: httpx.Response) -> bool:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert response.json()["detail"].startswith("Storage not writable: ")
    return True


def test_database_made_read_only_answers_503_reads_work_and_writes_resume(
    start_server: StartServer, tmp_path: Path
) -> None:
    if not _immutable_supported(tmp_path):
        pytest.skip("needs root and chattr +i on this file system (chmod stops no open file)")
    server = start_server()
    agent = f"ro-{uuid.uuid4().hex[:8]}"
    acked: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as api:
        for _ in range(10):
            run = new_run(agent_name=agent)
            assert api.post("/api/v1/runs", json=run).status_code == 201
            acked.append(run["event_id"])
        first = acked[0]
        wal = Path(f"{server.db_path}-wal")
        assert wal.exists()
        refused_ids: list[str] = []
        with _read_only(server.db_path, wal):
            for _ in range(5):  # again and again: still up, still a clear answer
                run = new_run(agent_name=agent)
                refused_ids.append(run["event_id"])
                assert _refused(api.post("/api/v1/runs", json=run))
            batch = [new_run(agent_name=agent) for _ in range(3)]
            refused_ids += [run["event_id"] for run in batch]
            assert _refused(api.post("/api/v1/runs/batch", json=batch))
            assert _refused(api.patch(f"/api/v1/runs/{first}", json={"status": "success"}))
            commit = {"commit_hash": "abcdef1", "commit_source": "ci"}
            assert _refused(api.post(f"/api/v1/runs/{first}/associate-commit", json=commit))

            assert api.get(f"/api/v1/runs/{first}").json()["status"] == "running"
            listed = api.get("/api/v1/runs", params={"agent_name": agent}).json()
            assert {run["event_id"] for run in listed} == set(acked)
            health = api.get("/health")
            assert health.status_code == 200
            assert health.json()["writable"] is False
            assert health.json()["storage_error"].startswith("Storage not writable: ")
            assert server.process is not None
            assert server.process.poll() is None

        # Writable again: the next write is stored.
        run = new_run(agent_name=agent)
        assert api.post("/api/v1/runs", json=run).status_code == 201
        acked.append(run["event_id"])
        assert api.patch(f"/api/v1/runs/{first}", json={"status": "success"}).status_code == 200
        assert api.get("/health").json()["writable"] is True

    server.stop()
    stored = {row[0] for row in query(server, "SELECT event_id FROM agent_runs")}
    assert set(acked) <= stored
    assert not set(refused_ids) & stored
    with closing(sqlite3.connect(server.db_path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
