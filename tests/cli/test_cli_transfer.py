"""``local-telemetry export runs|kpis`` and ``local-telemetry import``, run as real
subprocesses against real servers: export, import into an empty server, compare."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from cli_support import clean_env, cli_against
from support import ServerProcess, StartServer, new_run, query, table_columns


def seed(server: ServerProcess, agent: str) -> int:
    """A varied set of runs of ``agent``; returns how many."""
    statuses = ["running", "success", "failure", "partial", "timeout", "cancelled"]
    batch: list[dict[str, Any]] = []
    for i, status in enumerate(statuses):
        batch.append(
            new_run(
                agent_name=agent,
                job_type=f"job-{i % 2}",
                status=status,
                items_discovered=i * 10,
                items_failed=i,
                metrics_json={"n": i, "x": i / 7, "deep": {"ü": ["日本", None, {"k": [True]}]}},
                context_json={"text": 'comma, "quote"\r\nnew line'} if i % 2 else None,
                error_details='trace:\n  at x, "y"' if status == "failure" else None,
                git_repo="git@github.com:example/repo.git" if i == 1 else None,
                git_commit_hash="0123456789abcdef0123" if i == 1 else None,
                git_commit_source="ci" if i == 1 else None,
                api_posted=i == 2,
                api_posted_at="2026-01-12T11:00:00+05:30" if i == 2 else None,
                end_time="2026-01-12T10:45:00Z" if i > 1 else None,
                duration_ms=987654321 if i == 3 else None,
                parent_run_id="parent-1" if i == 4 else None,
            )
        )
    batch.append(new_run(agent_name=agent, created_at="2025-06-01T00:00:00Z", cost_usd=0))
    batch.append(new_run(agent_name=agent, created_at="2025-06-01T00:00:00Z", tokens_output=7))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/api/v1/runs/batch", json=batch).json()["inserted"] == len(batch)
        assert (
            client.patch(f"/api/v1/runs/{batch[0]['event_id']}", json={"status": "success"})
        ).status_code == 200
        run_id = str(uuid.uuid4())
        for body in (
            {"run_id": run_id, "agent_name": agent, "started_at": "2026-01-12T09:00:00Z"},
            {
                "run_id": run_id,
                "agent_name": agent,
                "ended_at": "2026-01-12T09:00:02.5Z",
                "resolution": "escalated",
                "self_corrected": False,
                "tokens_input": 2**40,
                "tokens_output": 12,
                "cost_usd": 1 / 3,
                "sla_target_seconds": 1,
                "metadata": {"model": "ω", "list": [1, 2.5e-7, None]},
                "qc": [{"score": 2, "notes": "meh"}],
            },
        ):
            assert client.post("/api/agent-runs", json=body).status_code == 200
    return len(batch) + 1


def run_rows(server: ServerProcess) -> list[tuple[Any, ...]]:
    """Every stored column of every run but the surrogate ``id``, by event_id."""
    columns = [c for c in table_columns(server, "agent_runs") if c != "id"]
    return query(server, f"SELECT {', '.join(columns)} FROM agent_runs ORDER BY event_id")


@pytest.fixture
def servers(start_server: StartServer, tmp_path: Path) -> tuple[ServerProcess, ServerProcess]:
    """A seeded source server and an empty target server."""
    source = start_server(tmp_path / "source.sqlite")
    target = start_server(tmp_path / "target.sqlite")
    seed(source, f"agent-{uuid.uuid4().hex[:8]}")
    seed(source, f"other-{uuid.uuid4().hex[:8]}")
    return source, target


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_import_round_trip(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path, fmt: str
) -> None:
    source, target = servers
    first = tmp_path / f"first.{fmt}"
    exported = cli_against(source, "export", "runs", "-o", str(first), "--json", "--progress")
    assert exported.returncode == 0, exported.stderr
    summary = orjson.loads(exported.stdout)
    assert summary == {"path": str(first), "format": fmt, "rows": 18, "bytes": first.stat().st_size}
    assert "wrote 18 runs" in exported.stderr

    imported = cli_against(target, "import", str(first), "--batch-size", "4", "--progress")
    assert imported.returncode == 0, imported.stderr
    assert "imported 18, skipped 0 existing" in imported.stdout
    assert run_rows(target) == run_rows(source)
    assert len(run_rows(target)) == 18

    second = tmp_path / f"second.{fmt}"
    assert cli_against(target, "export", "runs", "-o", str(second)).returncode == 0
    if fmt == "parquet":
        assert pq.read_table(second).equals(pq.read_table(first))
    else:
        assert second.read_bytes() == first.read_bytes()

    again = cli_against(target, "import", str(first), "--json")
    assert again.returncode == 0, again.stderr
    assert orjson.loads(again.stdout)["skipped_existing"] == 18


def test_export_filter_holds_only_that_agent(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    source, _ = servers
    agent = next(
        r[0] for r in query(source, "SELECT agent_name FROM agent_runs") if "agent-" in r[0]
    )
    path = tmp_path / "one.jsonl"
    result = cli_against(source, "export", "runs", "--agent-name", agent, "-o", str(path))
    assert result.returncode == 0, result.stderr
    runs = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(runs) == 9
    assert {run["agent_name"] for run in runs} == {agent}


def test_kpis_export_equals_the_endpoint(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    source, _ = servers
    path = tmp_path / "kpis.csv"
    args = ["--group-by", "agent_name", "--group-by", "day", "--tz", "Europe/Berlin"]
    result = cli_against(source, "export", "kpis", *args, "-o", str(path))
    assert result.returncode == 0, result.stderr
    params = [("format", "csv"), ("group_by", "agent_name"), ("group_by", "day")]
    expected = httpx.get(
        f"{source.url}/api/v1/export/kpis", params=[*params, ("tz", "Europe/Berlin")]
    )
    assert expected.status_code == 200
    assert path.read_bytes() == expected.content
    assert path.read_bytes().count(b"\r\n") >= 3


def test_output_dash_writes_to_stdout(servers: tuple[ServerProcess, ServerProcess]) -> None:
    source, _ = servers
    env = clean_env(TELEMETRY_API_URL=source.url)
    result = subprocess.run(
        [sys.executable, "-m", "local_telemetry", "export", "runs", "--format", "csv", "-o", "-"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = httpx.get(f"{source.url}/api/v1/export/runs", params={"format": "csv"})
    assert result.stdout == expected.content
    assert b"wrote 18 runs" in result.stderr


def _exported_lines(source: ServerProcess, count: int) -> list[bytes]:
    """The first ``count`` lines of the source's JSON Lines export (newest runs first)."""
    export = httpx.get(f"{source.url}/api/v1/export/runs", params={"format": "jsonl"})
    lines: list[bytes] = export.content.splitlines()[:count]
    return lines


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_bad_line_stops_the_import_naming_it(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    source, target = servers
    lines = _exported_lines(source, 6)
    lines[2] = b'{"event_id": "broken", not json'
    path = tmp_path / "bad.jsonl"
    _write_lines(path, lines)
    result = cli_against(target, "import", str(path), "--batch-size", "1")
    assert result.returncode == 2
    assert "line 3" in result.stderr
    assert "imported 3 runs" in result.stderr  # lines 6, 5 and 4: sent oldest first
    stored = {r[0] for r in query(target, "SELECT event_id FROM agent_runs")}
    assert stored == {orjson.loads(line)["event_id"] for line in lines[3:]}


def test_server_refused_row_names_its_line(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    source, target = servers
    lines = _exported_lines(source, 4)
    run = orjson.loads(lines[1])
    run["status"] = "exploded"
    lines[1] = orjson.dumps(run)
    path = tmp_path / "refused.jsonl"
    _write_lines(path, lines)
    result = cli_against(target, "import", str(path))
    assert result.returncode == 2
    assert "line 2: status" in result.stderr
    assert query(target, "SELECT COUNT(*) FROM agent_runs") == [(0,)]  # one batch: none


def test_failed_export_leaves_no_file(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    source, target = servers
    path = tmp_path / "out" / "runs.csv"
    path.parent.mkdir()
    result = cli_against(source, "export", "runs", "--created-after", "yesterday", "-o", str(path))
    assert result.returncode == 2
    assert "created_after" in result.stderr
    assert list(path.parent.iterdir()) == []
    # an existing file is left as it was
    path.write_bytes(b"previous export")
    target.stop()
    result = cli_against(target, "export", "runs", "-o", str(path))
    assert result.returncode == 1
    assert "cannot reach the server" in result.stderr
    assert path.read_bytes() == b"previous export"
    assert list(path.parent.iterdir()) == [path]


def test_import_needs_a_known_format(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    _, target = servers
    path = tmp_path / "runs.txt"
    path.write_text("{}\n")
    result = cli_against(target, "import", str(path))
    assert result.returncode == 2
    assert "--format" in result.stderr
    assert cli_against(target, "import", str(tmp_path / "missing.csv")).returncode == 2
