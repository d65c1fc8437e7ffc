"""Repeated ``kill -9`` under mixed load: every acknowledged write keeps its last
acknowledged values.

Each cycle starts the server on the same database, runs creates, batches, PATCHes
(status, end_time, counters) and commit associations from several threads, and kills
the server at a random moment. Each thread owns its runs and writes them one request
at a time, so "the last acknowledged value" of a field is well defined; a request cut
by the kill may or may not have been applied, so its values are accepted too, until a
later acknowledged write of the same field supersedes them.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import httpx

from local_telemetry.timestamps import normalize
from support import ServerProcess, StartServer, new_run, query

CYCLES = 10
WRITERS = 6
BATCH_SIZE = 5
LOAD_SECONDS = (0.4, 1.5)  # the kill comes at a random moment in this range
THREAD_GUARD_SECONDS = 30.0
CHECKED_FIELDS = (
    "status",
    "end_time",
    "items_succeeded",
    "items_failed",
    "git_commit_hash",
    "git_commit_source",
)


@dataclass
class RunState:
    """What a run's fields may be: the last acknowledged value, plus the values of
    writes after it whose outcome is unknown (cut by the kill)."""

    acked: dict[str, Any]
    maybe: dict[str, list[Any]] = field(default_factory=dict)

    def applied(self, values: dict[str, Any]) -> None:
        """A write of ``values`` was acknowledged."""
        for name, value in values.items():
            self.acked[name] = value
            self.maybe.pop(name, None)

    def unknown(self, values: dict[str, Any]) -> None:
        """A write of ``values`` was cut: it may or may not be stored."""
        for name, value in values.items():
            self.maybe.setdefault(name, []).append(value)

    def allowed(self, name: str) -> list[Any]:
        """Values the stored field may have."""
        return [self.acked.get(name), *self.maybe.get(name, [])]


@dataclass
class Ledger:
    """Every acknowledged write, per thread (each thread owns its runs)."""

    runs: dict[str, RunState] = field(default_factory=dict)
    acked_writes: int = 0
    cut_writes: int = 0
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, acked: bool) -> None:
        """Count an acknowledged or a cut write."""
        with self.lock:
            if acked:
                self.acked_writes += 1
            else:
                self.cut_writes += 1


def _initial() -> RunState:
    created = {"status": "running", "items_succeeded": 0, "items_failed": 0}  # defaults
    return RunState(dict.fromkeys(CHECKED_FIELDS) | created)


class Writer(threading.Thread):
    """One client thread: a random mix of writes to its own runs until the server dies."""

    def __init__(self, url: str, ledger: Ledger, owned: list[str], seed: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ledger = ledger
        self.owned = owned
        self.rng = random.Random(seed)

    def run(self) -> None:
        """Write until a request is cut (the server was killed) or the guard passes."""
        deadline = time.monotonic() + THREAD_GUARD_SECONDS
        with httpx.Client(base_url=self.url, timeout=THREAD_GUARD_SECONDS) as client:
            while time.monotonic() < deadline:
                try:
                    self._one_write(client)
                except httpx.TransportError:
                    return  # the server is gone: this thread's cycle is over

    def _one_write(self, client: httpx.Client) -> None:
        roll = self.rng.random()
        if roll < 0.25 or not self.owned:
            self._create(client, [new_run(agent_name="crash-cycles")])
        elif roll < 0.35:
            self._create(client, [new_run(agent_name="crash-cycles") for _ in range(BATCH_SIZE)])
        elif roll < 0.75:
            minute, second = self.rng.randrange(31, 60), self.rng.randrange(60)
            values = {
                "status": self.rng.choice(["success", "failure", "partial", "running"]),
                "end_time": f"2026-01-12T10:{minute:02d}:{second:02d}Z",
                "items_succeeded": self.rng.randrange(1000),
                "items_failed": self.rng.randrange(1000),
            }
            event_id = self.rng.choice(self.owned)
            stored = values | {"end_time": normalize(values["end_time"])}
            self._update(client, event_id, "PATCH", f"/api/v1/runs/{event_id}", values, stored)
        else:
            commit_hash = uuid.uuid4().hex[: self.rng.randrange(7, 33)]
            body = {"commit_hash": commit_hash, "commit_source": "ci"}
            stored = {"git_commit_hash": commit_hash, "git_commit_source": "ci"}
            event_id = self.rng.choice(self.owned)
            path = f"/api/v1/runs/{event_id}/associate-commit"
            self._update(client, event_id, "POST", path, body, stored)

    def _create(self, client: httpx.Client, runs: list[dict[str, Any]]) -> None:
        if len(runs) == 1:
            response = client.post("/api/v1/runs", json=runs[0])  # cut: run may exist or not
            acked = response.status_code == 201
        else:
            response = client.post("/api/v1/runs/batch", json=runs)
            acked = response.status_code == 200 and response.json()["inserted"] == len(runs)
        if not acked:
            self.ledger.refused.append(f"create: {response.status_code} {response.text[:200]}")
            return
        self.ledger.count(acked=True)
        for run in runs:
            self.ledger.runs[run["event_id"]] = _initial()
            self.owned.append(run["event_id"])

    def _update(
        self,
        client: httpx.Client,
        event_id: str,
        method: str,
        path: str,
        body: dict[str, Any],
        stored: dict[str, Any],
    ) -> None:
        state = self.ledger.runs[event_id]
        try:
            response = client.request(method, path, json=body)
        except httpx.TransportError:
            state.unknown(stored)
            self.ledger.count(acked=False)
            raise
        if response.status_code != 200:
            self.ledger.refused.append(f"{method}: {response.status_code} {response.text[:200]}")
            return
        state.applied(stored)
        self.ledger.count(acked=True)


def _cycle(
    server: ServerProcess, ledger: Ledger, owned: list[list[str]], rng: random.Random
) -> int:
    before = ledger.acked_writes
    writers = [Writer(server.url, ledger, owned[i], rng.randrange(2**32)) for i in range(WRITERS)]
    for writer in writers:
        writer.start()
    time.sleep(rng.uniform(*LOAD_SECONDS))
    server.kill()
    for writer in writers:
        writer.join(THREAD_GUARD_SECONDS + 10)
        assert not writer.is_alive()
    return ledger.acked_writes - before


def test_kill_9_cycles_under_mixed_load_keep_last_acknowledged_values(
    start_server: StartServer,
) -> None:
    rng = random.Random()
    ledger = Ledger()
    owned: list[list[str]] = [[] for _ in range(WRITERS)]
    server = start_server()
    for cycle in range(CYCLES):
        if cycle:
            server = start_server(db_path=server.db_path)  # restart on the same database
        acked = _cycle(server, ledger, owned, rng)
        assert acked > 0, f"cycle {cycle}: nothing acknowledged"
    assert ledger.refused == []  # a valid write is acknowledged, or cut by the kill

    if server.database_url is None:
        with closing(sqlite3.connect(server.db_path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    columns = ", ".join(CHECKED_FIELDS)
    rows = {
        row[0]: dict(zip(CHECKED_FIELDS, row[1:], strict=True))
        for row in query(server, f"SELECT event_id, {columns} FROM agent_runs")
    }
    wrong = []
    for event_id, state in ledger.runs.items():
        assert event_id in rows, f"acknowledged run {event_id} lost"
        for name in CHECKED_FIELDS:
            if rows[event_id][name] not in state.allowed(name):
                wrong.append((event_id, name, rows[event_id][name], state.allowed(name)))
    assert wrong == []
    print(
        f"\n{CYCLES} kill -9 cycles: {ledger.acked_writes} acknowledged writes on "
        f"{len(ledger.runs)} runs checked, {ledger.cut_writes} updates cut by a kill"
    )
