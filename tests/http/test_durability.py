"""Nothing acknowledged is lost: kill -9 the server under write load, restart, check."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable
from contextlib import closing

import httpx

from support import ServerProcess, new_run, query

WRITERS = 8
ACKS_BEFORE_KILL = 400
MAX_REQUESTS_PER_WRITER = 5000


def _write_until_stopped(
    url: str, created: list[str], patched: list[str], stop: threading.Event
) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(MAX_REQUESTS_PER_WRITER):
            if stop.is_set():
                return
            run = new_run(agent_name="crash-agent")
            try:
                response = client.post("/api/v1/runs", json=run)
                if response.status_code == 201 and response.json()["status"] == "created":
                    created.append(run["event_id"])
                response = client.patch(
                    f"/api/v1/runs/{run['event_id']}",
                    json={"status": "success", "items_succeeded": 7},
                )
                if response.status_code == 200:
                    patched.append(run["event_id"])
            except httpx.TransportError:
                return  # the server is gone


def test_kill_9_under_load_loses_no_acknowledged_write(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    created: list[str] = []
    patched: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_write_until_stopped, args=(server.url, created, patched, stop))
        for _ in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    acked = threading.Event()
    while not acked.wait(0.05):
        if len(created) >= ACKS_BEFORE_KILL or not any(t.is_alive() for t in threads):
            acked.set()
    server.kill()  # SIGKILL while requests are in flight
    stop.set()
    for thread in threads:
        thread.join(30)
    acknowledged_creates = set(created)
    acknowledged_patches = set(patched)
    assert len(acknowledged_creates) >= ACKS_BEFORE_KILL

    if server.database_url is None:  # SQLite: the file itself survived the kill intact
        with closing(sqlite3.connect(server.db_path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = dict(query(server, "SELECT event_id, status FROM agent_runs"))
    assert acknowledged_creates <= rows.keys()
    assert all(rows[event_id] == "success" for event_id in acknowledged_patches)

    restarted = server.__class__(server.db_path, {}).start()
    try:
        with httpx.Client(base_url=restarted.url, timeout=10) as client:
            sample = sorted(acknowledged_patches)[:50]
            for event_id in sample:
                run = client.get(f"/api/v1/runs/{event_id}").json()
                assert (run["status"], run["items_succeeded"]) == ("success", 7)
            fresh = new_run()
            assert client.post("/api/v1/runs", json=fresh).json()["status"] == "created"
            missing = str(uuid.uuid4())
            assert client.get(f"/api/v1/runs/{missing}").status_code == 404
    finally:
        restarted.stop()
