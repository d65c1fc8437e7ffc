"""Time ``GET /api/v1/kpis`` on a large store: seed N runs, then query 30 days per agent
per day through the store method and through HTTP with a real server.

    .venv/bin/python bench/kpis.py [--runs 1000000] [--days 365] [--agents 10] [--db PATH]

Runs are spread evenly over ``--days`` days before 2026-07-01, across ``--agents``
agents, with outcome fields, SLA targets and durations (some supplied, some computed
from end - start). Prints milliseconds per query (median of ``--repeat``).

``--db PATH`` keeps the seeded database there and reuses it when it already holds runs
(seeding 1,000,000 runs takes about half a minute), so two trees can be timed against
the same file, e.g. the baseline with ``PYTHONPATH=/tmp/kpi-base/src`` (the server is
started with the same environment, so it runs the same tree).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from local_telemetry import kpis
from local_telemetry.storage.base import InsertRuns, KpiFilter
from local_telemetry.storage.sqlite import SQLiteStore
from local_telemetry.timestamps import to_stored

END = datetime(2026, 7, 1, tzinfo=UTC)
CHUNK = 20_000
STATUSES = ("success", "success", "success", "failure", "partial", "running")
RESOLUTIONS = {"success": "resolved", "failure": "failed", "partial": "escalated"}


def seed(store: SQLiteStore, runs: int, days: int, agents: int) -> float:
    rng = random.Random(7)
    span = days * 86_400
    began = time.perf_counter()
    for first in range(0, runs, CHUNK):
        rows: list[dict[str, Any]] = []
        for i in range(first, min(first + CHUNK, runs)):
            start = END - timedelta(seconds=span * (runs - i) / runs)
            status = rng.choice(STATUSES)
            row: dict[str, Any] = {
                "event_id": f"bench-{i}",
                "run_id": f"run-{i}",
                "agent_name": f"agent-{i % agents:02d}",
                "job_type": "triage" if i % 3 else "review",
                "start_time": to_stored(start),
                "created_at": to_stored(start),
                "status": status,
                "tokens_input": rng.randrange(100, 5000),
                "tokens_output": rng.randrange(10, 1000),
                "cost_usd": rng.random() / 10,
                "self_corrected": rng.random() < 0.2 if i % 2 else None,
                "sla_target_seconds": 60 if i % 4 else None,
            }
            if status != "running":
                row["end_time"] = to_stored(start + timedelta(milliseconds=rng.randrange(90_000)))
                row["resolution"] = RESOLUTIONS[status]
                if i % 5 == 0:
                    row["duration_ms"] = rng.randrange(90_000)
            rows.append(row)
        store.apply([InsertRuns(rows)])
    return time.perf_counter() - began


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def median_seconds(function: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--db", type=Path, help="seeded database to keep and reuse")
    args = parser.parse_args()
    print(f"code: {Path(kpis.__file__).parent}")
    with tempfile.TemporaryDirectory() as directory:
        path = args.db or Path(directory) / "kpis.sqlite"
        store = SQLiteStore(path)
        store.migrate()
        held = 0
        if args.db:
            with closing(sqlite3.connect(path)) as conn:
                held = conn.execute("SELECT COALESCE(SUM(runs), 0) FROM run_counts").fetchone()[0]
        if held:
            print(f"reusing {path} ({held:,} runs)")
        else:
            seconds = seed(store, args.runs, args.days, args.agents)
            print(f"seeded {args.runs:,} runs in {seconds:.1f} s")
        window = KpiFilter(
            start_time_from=to_stored(END - timedelta(days=30)), start_time_to=to_stored(END)
        )
        group_by = ("agent_name", "day")
        for tz in ("UTC", "Europe/Berlin", "Asia/Kolkata"):

            def query(tz: str = tz) -> list[dict[str, Any]]:
                inputs = store.kpi_inputs(window, group_by, tz)
                return [
                    kpis.group_kpis(dict(zip(group_by, key, strict=True)), inputs[key])
                    for key in sorted(inputs)
                ]

            groups = query()
            ms = median_seconds(query, args.repeat) * 1000
            print(f"store.kpi_inputs + kpis, 30 days per agent per day, tz={tz}: {ms:.1f} ms")
            print(f"  ({len(groups)} groups, {sum(g['total_runs'] for g in groups):,} runs)")
        store.close()
        port = free_port()
        env = {
            **os.environ,
            "TELEMETRY_DB_PATH": str(path),
            "TELEMETRY_API_HOST": "127.0.0.1",
            "TELEMETRY_API_PORT": str(port),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "local_telemetry", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            params = [
                ("from", window.start_time_from),
                ("to", window.start_time_to),
                ("group_by", "agent_name"),
                ("group_by", "day"),
            ]
            with httpx.Client(base_url=url, timeout=60) as client:
                for tz in ("UTC", "Europe/Berlin"):

                    def get(tz: str = tz) -> None:
                        client.get("/api/v1/kpis", params=[*params, ("tz", tz)]).raise_for_status()

                    get()
                    ms = median_seconds(get, args.repeat) * 1000
                    print(f"HTTP GET /api/v1/kpis, same query, tz={tz}: {ms:.1f} ms")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
