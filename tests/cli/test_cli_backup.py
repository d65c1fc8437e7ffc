"""``local-telemetry backup`` / ``restore`` as real subprocesses against real servers."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx

from cli_support import cli, cli_against
from support import ServerProcess, StartServer, new_run, query

LOAD_THREADS = 3
LOAD_MAX_RUNS_PER_THREAD = 400
LOAD_MAX_SECONDS = 60.0
ACKS_BEFORE_BACKUP = 30
ACKS_AFTER_BACKUP = 15


class WriteLoad:
    """A few threads POSTing runs, recording (event_id, monotonic time of the 201)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acks: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + LOAD_MAX_SECONDS
        self.threads = [threading.Thread(target=self._post) for _ in range(LOAD_THREADS)]

    def _post(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for _ in range(LOAD_MAX_RUNS_PER_THREAD):
                if self.stop.is_set() or time.monotonic() > self.deadline:
                    return
                body = new_run(agent_name="backup-load")
                response = client.post("/api/v1/runs", json=body)
                acked = time.monotonic()
                with self.lock:
                    if response.status_code == 201:
                        self.acks.append((body["event_id"], acked))
                    else:
                        self.errors.append(f"{response.status_code} {response.text[:200]}")

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def wait_for(self, count: int, after: float = 0.0) -> None:
        """Until ``count`` runs were acknowledged after ``after`` (or the load ended)."""
        while time.monotonic() < self.deadline and any(t.is_alive() for t in self.threads):
            with self.lock:
                if sum(1 for _, at in self.acks if at > after) >= count:
                    return
            time.sleep(0.02)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(LOAD_MAX_SECONDS)


def _post_runs(server: ServerProcess, count: int, agent: str) -> list[str]:
    ids = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(count):
            body = new_run(agent_name=agent)
            assert client.post("/api/v1/runs", json=body).status_code == 201
            ids.append(body["event_id"])
    return ids


def _backed_up(
    server: ServerProcess, tmp_path: Path, agent: str, before: int, after: int
) -> tuple[Path, list[str], list[str]]:
    """``before`` runs, a backup of them (``tmp_path/backup.sqlite``), then ``after``
    runs more: the backup's path and the ids of both sets of runs."""
    old_ids = _post_runs(server, before, agent)
    backup_path = tmp_path / "backup.sqlite"
    assert cli_against(server, "backup", str(backup_path)).returncode == 0
    later_ids = _post_runs(server, after, agent)
    return backup_path, old_ids, later_ids


def _event_ids(db: Path) -> set[str]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return {str(row[0]) for row in conn.execute("SELECT event_id FROM agent_runs")}


def _integrity(db: Path) -> str:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_backup_during_writes_restores_every_run_acknowledged_before_it(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    load = WriteLoad(server.url)
    load.start()
    try:
        load.wait_for(ACKS_BEFORE_BACKUP)
        backup_started = time.monotonic()
        backup_path = tmp_path / "backups" / "telemetry-backup.sqlite"
        backup_path.parent.mkdir()
        result = cli_against(server, "backup", str(backup_path), "--json")
        # Writes go on after the backup began (and after it finished).
        load.wait_for(ACKS_AFTER_BACKUP, after=backup_started)
    finally:
        load.finish()
    assert result.returncode == 0, result.stderr
    assert load.errors == []
    summary = json.loads(result.stdout)
    assert summary["integrity"] == "ok"
    assert summary["path"] == str(backup_path)
    assert summary["bytes"] == backup_path.stat().st_size
    assert "integrity ok" in result.stderr
    assert str(backup_path) in result.stderr

    before = {event_id for event_id, at in load.acks if at < backup_started}
    after = {event_id for event_id, at in load.acks if at > backup_started}
    assert len(before) >= ACKS_BEFORE_BACKUP
    assert after, "the load should still have been writing while the backup ran"
    source_ids = {str(row[0]) for row in query(server, "SELECT event_id FROM agent_runs")}
    assert before | after <= source_ids
    assert summary["runs"] >= len(before)

    # The backup is one self-contained file: nothing next to it.
    assert sorted(p.name for p in backup_path.parent.iterdir()) == [backup_path.name]
    assert _integrity(backup_path) == "ok"

    restored_db = tmp_path / "restored" / "telemetry.sqlite"
    restored = cli("restore", str(backup_path), "--json", TELEMETRY_DB_PATH=str(restored_db))
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["previous"] is None

    second = start_server(db_path=restored_db)
    restored_ids = {str(row[0]) for row in query(second, "SELECT event_id FROM agent_runs")}
    missing = before - restored_ids
    assert not missing, f"{len(missing)} acknowledged runs are missing from the backup"
    assert len(restored_ids) == summary["runs"]
    assert query(second, "PRAGMA integrity_check") == [("ok",)]
    with httpx.Client(base_url=second.url, timeout=30) as client:
        sample = sorted(before)[:5]
        for event_id in sample:
            assert client.get(f"/api/v1/runs/{event_id}").status_code == 200
        assert client.post("/api/v1/runs", json=new_run()).status_code == 201


def test_backup_refuses_an_existing_path_unless_forced(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    _post_runs(server, 3, "backup-force")
    target = tmp_path / "copy.sqlite"
    target.write_text("precious")
    refused = cli_against(server, "backup", str(target))
    assert refused.returncode == 2
    assert "--force" in refused.stderr
    assert target.read_text() == "precious"

    forced = cli_against(server, "backup", str(target), "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["runs"] == 3
    assert _integrity(target) == "ok"
    assert len(_event_ids(target)) == 3


def test_backup_to_stdout_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.sqlite"
    sqlite3.connect(db).close()
    result = cli("backup", "-", TELEMETRY_DB_PATH=str(db))
    assert result.returncode == 2
    assert "'-'" in result.stderr


def test_backup_of_a_missing_database_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.sqlite"
    result = cli("backup", str(tmp_path / "copy.sqlite"), TELEMETRY_DB_PATH=str(missing))
    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert not missing.exists()  # not created by the attempt
    assert not (tmp_path / "copy.sqlite").exists()


def test_backup_and_restore_on_postgres_settings_name_pg_tools(tmp_path: Path) -> None:
    url = "postgresql://telemetry:secret@127.0.0.1:1/telemetry"
    backup = cli("backup", str(tmp_path / "dump"), TELEMETRY_DATABASE_URL=url)
    assert backup.returncode == 2
    assert 'pg_dump --format=custom --file=PATH "$TELEMETRY_DATABASE_URL"' in backup.stderr
    restore = cli("restore", str(tmp_path / "dump"), TELEMETRY_DATABASE_URL=url)
    assert restore.returncode == 2
    assert "pg_restore" in restore.stderr
    assert not (tmp_path / "dump").exists()


def test_restore_refuses_while_a_server_runs_then_works_once_it_stopped(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    backup_path, old_ids, later_ids = _backed_up(server, tmp_path, "restore-running", 4, 2)

    refused = cli_against(server, "restore", str(backup_path))
    assert refused.returncode == 1
    assert "stop" in refused.stderr
    assert "--force" in refused.stderr
    # The database is untouched: the server still serves every run, nothing moved aside.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for event_id in old_ids + later_ids:
            assert client.get(f"/api/v1/runs/{event_id}").status_code == 200
    assert not list(tmp_path.glob("*.before-restore-*"))

    server.stop()
    restored = cli_against(server, "restore", str(backup_path), "--json")
    assert restored.returncode == 0, restored.stderr
    previous = Path(json.loads(restored.stdout)["previous"])
    assert previous.name.startswith("telemetry.sqlite.before-restore-")
    assert str(previous) in restored.stderr
    assert _event_ids(server.db_path) == set(old_ids)
    assert _event_ids(previous) == set(old_ids + later_ids)


def test_restore_keeps_the_whole_old_database_aside_and_the_backup_serves(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    backup_path, old_ids, later_ids = _backed_up(server, tmp_path, "restore-aside", 5, 3)
    server.kill()  # no clean shutdown: the -wal (with the later runs' pages) stays
    wal = Path(f"{server.db_path}-wal")
    assert wal.exists()
    assert wal.stat().st_size > 0

    restored = cli_against(server, "restore", str(backup_path), "--json")
    assert restored.returncode == 0, restored.stderr
    found = json.loads(restored.stdout)
    previous = Path(found["previous"])
    # No server had it open, so its WAL was folded into the file before it went aside:
    # the aside file alone holds every old run, the killed server's last ones included.
    assert found["previous_sidecars"] == []
    assert not Path(f"{previous}-wal").exists()
    assert _event_ids(previous) == set(old_ids + later_ids)
    # Nothing of the old database is left next to the restored file to be replayed into it.
    assert not wal.exists()
    assert not Path(f"{server.db_path}-shm").exists()

    again = start_server(db_path=server.db_path)
    with httpx.Client(base_url=again.url, timeout=30) as client:
        for event_id in old_ids:
            assert client.get(f"/api/v1/runs/{event_id}").status_code == 200
        for event_id in later_ids:
            assert client.get(f"/api/v1/runs/{event_id}").status_code == 404
        assert client.post("/api/v1/runs", json=new_run()).status_code == 201
    assert query(again, "PRAGMA integrity_check") == [("ok",)]


def test_restore_refuses_files_that_are_no_database_of_ours(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    ids = _post_runs(server, 2, "restore-foreign")
    server.stop()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    foreign = tmp_path / "foreign.sqlite"
    with closing(sqlite3.connect(foreign)) as conn:
        conn.execute("CREATE TABLE agent_runs (id INTEGER PRIMARY KEY)")
        conn.commit()
    for path in (text, foreign, tmp_path / "missing.sqlite"):
        result = cli_against(server, "restore", str(path))
        assert result.returncode == 2, (path, result.stderr)
        assert str(path) in result.stderr
    assert _event_ids(server.db_path) == set(ids)
    assert not list(tmp_path.glob("*.before-restore-*"))


def test_restore_with_force_replaces_the_file_under_a_running_server(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    backup_path, old_ids, _ = _backed_up(server, tmp_path, "restore-force", 2, 2)
    forced = cli_against(server, "restore", str(backup_path), "--force")
    server.stop()
    assert forced.returncode == 0, forced.stderr
    assert _event_ids(server.db_path) == set(old_ids)
    assert list(tmp_path.glob("telemetry.sqlite.before-restore-*"))
