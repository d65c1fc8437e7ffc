"""The SDK with its disk spool against a server that is down, comes back, or dies."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx

from local_telemetry.client import TelemetryClient
from support import ServerProcess, free_port

WAIT_SECONDS = 60


def wait_for_runs(server: ServerProcess, agent: str, count: int) -> list[dict[str, object]]:
    """Poll until ``count`` runs of ``agent`` are final (bounded), return them."""
    deadline = time.monotonic() + WAIT_SECONDS
    runs: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        runs = httpx.get(
            f"{server.url}/api/v1/runs", params={"agent_name": agent, "limit": 1000}
        ).json()
        if len(runs) >= count and all(r["status"] == "success" for r in runs):
            return runs
        time.sleep(0.2)
    return runs


def track_runs(client: TelemetryClient, agent: str, count: int) -> None:
    for n in range(count):
        with client.run(agent, "spooled") as run:
            run.update(items_succeeded=n)


def test_runs_made_while_the_server_is_down_are_delivered_once_it_is_up(
    tmp_path: Path,
) -> None:
    port = free_port()
    agent = f"spool.{uuid.uuid4().hex[:8]}"
    client = TelemetryClient(
        f"http://127.0.0.1:{port}", spool_dir=tmp_path / "spool", retry_deadline=0.3
    )
    track_runs(client, agent, 40)
    assert client.flush(30)  # nothing reachable: safely spooled counts as flushed
    assert client.stats()["spooled"] >= 40
    assert client.stats()["sent"] == 0
    server = ServerProcess(tmp_path / "db.sqlite", {}, port=port).start()
    try:
        runs = wait_for_runs(server, agent, 40)
        assert len(runs) == 40  # each exactly once
        assert sorted(r["items_succeeded"] for r in runs) == list(range(40))
        assert all(r["status"] == "success" for r in runs)
    finally:
        client.close(5)
        server.stop()


def test_a_new_process_replays_what_an_earlier_one_spooled(tmp_path: Path) -> None:
    port = free_port()
    agent = f"spool.{uuid.uuid4().hex[:8]}"
    spool = tmp_path / "spool"
    script = (
        "from local_telemetry.client import TelemetryClient\n"
        f"c = TelemetryClient('http://127.0.0.1:{port}', spool_dir={str(spool)!r},"
        " retry_deadline=0.2)\n"
        "for n in range(15):\n"
        f"    with c.run({agent!r}, 'earlier') as r:\n"
        "        r.update(items_succeeded=n)\n"
        "c.close(10)\n"
        "print(c.stats())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "'sent': 0" in out
    server = ServerProcess(tmp_path / "db.sqlite", {}, port=port).start()
    try:
        later = TelemetryClient(server.url, spool_dir=spool)
        later.start_run(f"{agent}-later", "trigger")  # any activity; replay also runs idle
        runs = wait_for_runs(server, agent, 15)
        assert len(runs) == 15
        assert sorted(r["items_succeeded"] for r in runs) == list(range(15))
        later.close(10)
    finally:
        server.stop()


def test_kill_9_of_the_server_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    agent = f"spool.{uuid.uuid4().hex[:8]}"
    server = ServerProcess(tmp_path / "db.sqlite", {}).start()
    client = TelemetryClient(server.url, spool_dir=tmp_path / "spool", retry_deadline=0.5)
    total = 300
    tracked = threading.Thread(target=track_runs, args=(client, agent, total))
    tracked.start()
    while client.stats()["sent"] < 50 and tracked.is_alive():
        time.sleep(0.01)
    server.kill()  # SIGKILL while the client is sending
    tracked.join(60)
    assert client.flush(60)
    restarted = ServerProcess(server.db_path, {}, port=server.port).start()
    try:
        runs = wait_for_runs(restarted, agent, total)
        assert len(runs) == total
        assert len({r["event_id"] for r in runs}) == total
        assert sorted(r["items_succeeded"] for r in runs) == list(range(total))
        assert all(r["status"] == "success" for r in runs)
    finally:
        client.close(10)
        restarted.stop()


def test_spool_false_keeps_nothing_on_disk(tmp_path: Path) -> None:
    client = TelemetryClient(
        f"http://127.0.0.1:{free_port()}",
        spool=False,
        spool_dir=tmp_path / "spool",
        retry_deadline=0.2,
    )
    with client.run("agent", "job"):
        pass
    client.close(5)
    assert client.stats()["spooled"] == 0
    assert client.stats()["dropped"] >= 1
    assert not (tmp_path / "spool").exists()
