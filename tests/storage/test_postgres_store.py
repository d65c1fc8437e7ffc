"""PostgreSQL specifics: migrating once under an advisory lock, and writers of several
processes racing on one ``event_id`` (exactly one creates it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from local_telemetry.storage.base import InsertRuns, UpsertAgentRun
from local_telemetry.storage.migrations.postgres import MIGRATIONS
from local_telemetry.storage.postgres import PostgresStore, _public_url
from local_telemetry.timestamps import normalize
from support import store_row

START = normalize("2026-01-12T10:00:00Z")


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(postgres_url, pool_size=2)
    store.migrate()
    yield store
    store.close()


def test_processes_starting_at_once_migrate_once(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url, pool_size=1) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(lambda store: store.migrate(), stores))
        with psycopg.connect(postgres_url) as conn:
            rows = conn.execute("SELECT version FROM local_telemetry_schema").fetchall()
        assert rows == [(version,) for version, *_ in MIGRATIONS]
        assert stores[0].apply([InsertRuns([store_row("e1")])]) == [1]
    finally:
        for store in stores:
            store.close()


def _while_other_writer_holds(
    url: str, other_sql: str, params: tuple[Any, ...], commit: bool, write: Callable[[], Any]
) -> Any:
    """``write()`` (in a thread) while another connection has run ``other_sql`` in an
    open transaction; that transaction then commits or rolls back."""
    with psycopg.connect(url) as other:
        other.execute(other_sql, params)  # type: ignore[arg-type]
        result: list[Any] = []
        thread = threading.Thread(target=lambda: result.append(write()))
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the write should wait for the other transaction"
        if commit:
            other.commit()
        else:
            other.rollback()
        thread.join(30)
    return result[0]


_OTHER_INSERT = (
    "INSERT INTO agent_runs (event_id, run_id, created_at, start_time, agent_name, job_type)"
    " VALUES (%s, %s, %s, %s, 'other-agent', 'job-a') ON CONFLICT (event_id) DO NOTHING"
)


@pytest.mark.parametrize("other_commits", [True, False])
def test_racing_inserts_create_a_run_once(
    pg_store: PostgresStore, postgres_url: str, other_commits: bool
) -> None:
    result = _while_other_writer_holds(
        postgres_url,
        _OTHER_INSERT,
        ("race", "run-race", START, START),
        other_commits,
        lambda: pg_store.apply([InsertRuns([store_row("race"), store_row("calm")])]),
    )
    assert result == [1 if other_commits else 2]
    stored = pg_store.get_run("race")
    assert stored is not None
    assert stored["agent_name"] == ("other-agent" if other_commits else "agent-a")
    # The counts hold this store's creations (the raw insert above counts none).
    _, per_agent, _ = pg_store.run_counts("2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z")
    assert per_agent == {"agent-a": 1 if other_commits else 2}


@pytest.mark.parametrize("other_commits", [True, False])
def test_racing_upserts_create_a_run_once(
    pg_store: PostgresStore, postgres_url: str, other_commits: bool
) -> None:
    op = UpsertAgentRun(
        "up-race",
        {"agent_name": "other-agent", "job_type": "job-a", "start_time": START},
        qc=[{"score": 4, "notes": None, "reviewer": "r"}],
    )
    result = _while_other_writer_holds(
        postgres_url,
        _OTHER_INSERT,
        ("up-race", "up-race", START, START),
        other_commits,
        lambda: pg_store.apply([op]),
    )
    # Lost the race: the stored run matches, so only the review is new.
    assert result == ["updated" if other_commits else "created"]
    qc = pg_store.list_qc("up-race")
    assert qc is not None
    assert [review["score"] for review in qc] == [4]


def test_info_hides_the_password(pg_store: PostgresStore) -> None:
    assert _public_url("postgresql://u:secret@db.example:5433/tel") == (
        "postgresql://u@db.example:5433/tel"
    )
    info = pg_store.info()
    assert info.backend == "postgresql"
    assert (info.journal_mode, info.synchronous) == ("WAL", "FULL")
