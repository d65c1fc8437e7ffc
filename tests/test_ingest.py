"""The group-commit writer: many requests share one transaction, results reach each."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from local_telemetry.ingest import GroupCommitWriter, WriterBusy, WriterStopped
from local_telemetry.storage.base import InsertRuns, RunFilter, UpdateRun
from local_telemetry.storage.sqlite import SQLiteStore
from local_telemetry.timestamps import now_stored


def run_row(event_id: str, **fields: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "run_id": event_id,
        "agent_name": "a",
        "job_type": "j",
        "start_time": now_stored(),
        **fields,
    }


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "ingest.sqlite", busy_timeout_ms=20_000)
    store.migrate()
    return store


def test_writes_queued_while_the_database_is_locked_commit_together(store: SQLiteStore) -> None:
    async def scenario() -> list[object]:
        writer = GroupCommitWriter(store)
        writer.start()
        blocker = sqlite3.connect(store.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the writer's first commit waits on this lock
        first = asyncio.ensure_future(writer.submit(InsertRuns([run_row("first")])))
        await asyncio.sleep(0.2)
        rest = [
            asyncio.ensure_future(writer.submit(InsertRuns([run_row(f"e{i}")]))) for i in range(50)
        ]
        await asyncio.sleep(0.2)
        blocker.execute("COMMIT")
        blocker.close()
        results = await asyncio.gather(first, *rest)
        commits = writer.commits
        writer.stop()
        return [commits, *results]

    commits, *results = asyncio.run(scenario())
    assert results == [1] * 51
    assert commits == 2  # the first write alone, then the 50 that queued behind it
    assert len(store.list_runs(RunFilter(limit=1000))) == 51


def test_a_failing_write_reaches_only_its_own_caller(store: SQLiteStore) -> None:
    async def scenario() -> tuple[object, object, object]:
        writer = GroupCommitWriter(store)
        writer.start()
        ok = writer.submit(InsertRuns([run_row("ok")]))
        bad = writer.submit(InsertRuns([run_row("bad", items_failed=-1)]))
        update = writer.submit(UpdateRun("ok", {"status": "success"}))
        results = await asyncio.gather(ok, bad, update, return_exceptions=True)
        writer.stop()
        return results[0], results[1], results[2]

    ok, bad, update = asyncio.run(scenario())
    assert ok == 1
    assert isinstance(bad, sqlite3.IntegrityError)
    assert update == "ok"
    assert store.get_run("bad") is None


def test_full_queue_answers_busy_instead_of_waiting(store: SQLiteStore) -> None:
    async def scenario() -> None:
        writer = GroupCommitWriter(store, max_queue=1)
        writer.start()
        blocker = sqlite3.connect(store.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        first = asyncio.ensure_future(writer.submit(InsertRuns([run_row("a")])))
        await asyncio.sleep(0.2)  # the writer holds "a" and waits for the lock
        second = asyncio.ensure_future(writer.submit(InsertRuns([run_row("b")])))
        await asyncio.sleep(0)
        with pytest.raises(WriterBusy):
            await writer.submit(InsertRuns([run_row("c")]))
        blocker.execute("COMMIT")
        blocker.close()
        assert await first == 1
        assert await second == 1
        writer.stop()

    asyncio.run(scenario())
    assert store.get_run("c") is None


def test_submit_before_start_is_refused(store: SQLiteStore) -> None:
    writer = GroupCommitWriter(store)
    with pytest.raises(WriterStopped):
        asyncio.run(writer.submit(InsertRuns([run_row("x")])))


def test_a_database_held_by_another_process_is_storage_unavailable_not_a_bug(
    tmp_path: Path,
) -> None:
    """SQLITE_BUSY (a backup or tool holding the file past the busy timeout) is the
    storage refusing for now (503), like read-only or full storage; a bad statement is
    not."""
    import sqlite3
    from contextlib import closing

    from local_telemetry.ingest import storage_failure

    db = tmp_path / "held.sqlite"
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        with (
            closing(sqlite3.connect(db, timeout=0)) as writer,
            pytest.raises(sqlite3.OperationalError) as busy,
        ):
            writer.execute("INSERT INTO t VALUES (1)")
    with (
        closing(sqlite3.connect(db, timeout=0)) as writer,
        pytest.raises(sqlite3.OperationalError) as wrong,
    ):
        writer.execute("INSERT INTO no_such_table VALUES (1)")
    found = storage_failure(busy.value)
    assert found is not None
    assert found.full is False
    assert "SQLITE_BUSY" in str(found)
    assert storage_failure(wrong.value) is None
