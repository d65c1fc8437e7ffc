"""``POST /api/v1/import/runs``: exported runs stored again with their own timestamps.

Runs on both backends (``LT_TEST_BACKEND=postgres`` for PostgreSQL).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from support import ServerProcess, StartServer, new_run, query, table_columns

IMPORT = "/api/v1/import/runs"


def seed_runs(server: ServerProcess, agent: str) -> None:
    """A varied set of runs: every status, explicit and server-stamped created_at (ties
    among them), updated runs, agent runs with outcome fields and QC, nested unicode
    JSON, nulls and numbers."""
    statuses = ["running", "success", "failure", "partial", "timeout", "cancelled"]
    batch: list[dict[str, Any]] = []
    for i, status in enumerate(statuses):
        batch.append(
            new_run(
                agent_name=agent,
                job_type=f"job-{i % 2}",
                status=status,
                items_discovered=i * 10,
                items_succeeded=i,
                metrics_json={"n": i, "ratio": i / 3, "nested": {"ü": ["日本", None, True]}},
                context_json={"quote": 'a "b", c\nd'} if i % 2 else None,
                error_summary='line one\nline two, "quoted"' if status == "failure" else None,
                git_repo="https://github.com/example/repo" if i == 2 else None,
                git_commit_hash="abcdef1234567" if i == 2 else None,
                api_posted=i == 3,
                end_time="2026-01-12T10:31:00.5+01:00" if i > 2 else None,
                duration_ms=1234 if i == 5 else None,
            )
        )
    # created_at given: older than the server-stamped ones, two of them equal
    batch.append(new_run(agent_name=agent, created_at="2025-12-01T00:00:00Z", status="completed"))
    batch.append(new_run(agent_name=agent, created_at="2025-12-01T00:00:00Z", tokens_input=5))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/api/v1/runs/batch", json=batch).json()
        assert answer["inserted"] == len(batch), answer
        patched = client.patch(
            f"/api/v1/runs/{batch[0]['event_id']}", json={"status": "success", "duration_ms": 9}
        )
        assert patched.status_code == 200
        run_id = str(uuid.uuid4())
        for body in (
            {"run_id": run_id, "agent_name": agent, "started_at": "2026-01-12T10:00:00Z"},
            {
                "run_id": run_id,
                "agent_name": agent,
                "ended_at": "2026-01-12T10:00:01.250Z",
                "resolution": "resolved",
                "self_corrected": True,
                "tokens_input": 1200,
                "tokens_output": 340,
                "cost_usd": 0.1 + 0.2,
                "sla_target_seconds": 30,
                "metadata": {"model": "ω-1", "deep": {"a": [1, 2.5, {"b": None}]}},
                "qc": [{"score": 4, "notes": "fine"}],
            },
        ):
            assert client.post("/api/agent-runs", json=body).status_code == 200


def run_rows(server: ServerProcess, agent: str | None = None) -> list[tuple[Any, ...]]:
    """Every column of the runs (but the surrogate ``id``), ordered by event_id."""
    columns = [c for c in table_columns(server, "agent_runs") if c != "id"]
    where = "" if agent is None else " WHERE agent_name = ?"
    sql = f"SELECT {', '.join(columns)} FROM agent_runs{where} ORDER BY event_id"
    return query(server, sql, [] if agent is None else [agent])


def exported(server: ServerProcess, agent: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.url}/api/v1/export/runs", params={"format": "jsonl", "agent_name": agent}
    )
    assert response.status_code == 200
    return [orjson.loads(line) for line in response.content.splitlines()]


def test_round_trip_keeps_every_column(start_server: StartServer, tmp_path: Any) -> None:
    source = start_server(tmp_path / "source.sqlite")
    target = start_server(tmp_path / "target.sqlite")
    agent = f"import-{uuid.uuid4().hex[:8]}"
    seed_runs(source, agent)
    runs = exported(source, agent)
    assert len(runs) == 9
    assert any(run["updated_at"] for run in runs)
    assert httpx.get(f"{target.url}/api/v1/metadata").json()["agent_names"] == []
    # oldest first, as the CLI sends them, so equal created_at keep their order
    answer = httpx.post(f"{target.url}{IMPORT}", json=runs[::-1])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"imported": 9, "skipped_existing": 0}
    assert run_rows(target, agent) == run_rows(source, agent)
    for table in ("run_counts", "run_counts_hourly"):
        sql = f"SELECT * FROM {table} ORDER BY 1"
        assert query(target, sql) == query(source, sql)
    assert exported(target, agent) == runs
    # the metadata cache loaded above was dropped by the import
    assert httpx.get(f"{target.url}/api/v1/metadata").json()["agent_names"] == [agent]


def test_existing_runs_are_skipped_not_overwritten(api: httpx.Client) -> None:
    agent = f"import-{uuid.uuid4().hex[:8]}"
    created = new_run(agent_name=agent, status="running")
    assert api.post("/api/v1/runs", json=created).status_code == 201
    stored = api.get(f"/api/v1/runs/{created['event_id']}").json()
    changed = {**stored, "status": "success", "updated_at": "2026-02-01T00:00:00Z"}
    fresh = {**stored, "event_id": str(uuid.uuid4())}
    answer = api.post(IMPORT, json=[changed, fresh, fresh])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"imported": 1, "skipped_existing": 2}
    assert api.get(f"/api/v1/runs/{created['event_id']}").json() == stored
    assert api.get(f"/api/v1/runs/{fresh['event_id']}").json() == fresh


def _valid(agent: str) -> dict[str, Any]:
    run = new_run(agent_name=agent)
    run.update(status="success", created_at="2026-01-12T10:30:00Z", updated_at=None)
    return run


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_at", "2026-01-12 10:30"),  # no time zone
        ("items_failed", "3"),  # a string where an integer belongs
        ("status", "exploded"),
    ],
)
def test_invalid_row_stores_nothing(api: httpx.Client, field: str, value: Any) -> None:
    agent = f"import-{uuid.uuid4().hex[:8]}"
    runs = [_valid(agent) for _ in range(5)]
    runs[2][field] = value
    answer = api.post(IMPORT, json=runs)
    assert answer.status_code == 422
    locs = [error["loc"] for error in answer.json()["detail"]]
    assert locs == [["body", 2, field]]
    assert api.get("/api/v1/runs", params={"agent_name": agent}).json() == []


def test_created_at_is_required(api: httpx.Client) -> None:
    run = _valid(f"import-{uuid.uuid4().hex[:8]}")
    del run["created_at"]
    answer = api.post(IMPORT, json=[run])
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", 0, "created_at"]


def test_too_many_rows_and_not_an_array(api: httpx.Client) -> None:
    agent = f"import-{uuid.uuid4().hex[:8]}"
    answer = api.post(IMPORT, json=[_valid(agent) for _ in range(1001)])
    assert answer.status_code == 422
    assert "at most 1000" in answer.json()["detail"][0]["msg"]
    assert api.get("/api/v1/runs", params={"agent_name": agent}).json() == []
    assert api.post(IMPORT, json=_valid(agent)).status_code == 422
    assert api.post(IMPORT, json=[]).json() == {"imported": 0, "skipped_existing": 0}


def test_auth_required_when_enabled(start_server: StartServer) -> None:
    server = start_server(
        TELEMETRY_API_AUTH_ENABLED="true", TELEMETRY_API_AUTH_TOKEN="import-secret"
    )
    run = _valid(f"import-{uuid.uuid4().hex[:8]}")
    refused = httpx.post(f"{server.url}{IMPORT}", json=[run])
    assert refused.status_code == 401
    assert query(server, "SELECT COUNT(*) FROM agent_runs") == [(0,)]
    allowed = httpx.post(
        f"{server.url}{IMPORT}", json=[run], headers={"Authorization": "Bearer import-secret"}
    )
    assert allowed.json() == {"imported": 1, "skipped_existing": 0}


def test_import_on_a_scrubbing_server_scrubs_and_keeps_the_times(
    start_server: StartServer,
) -> None:
    server = start_server(TELEMETRY_PII_SCRUB="true")
    run = _valid(f"import-{uuid.uuid4().hex[:8]}")
    run.update(
        error_summary="mail ana@example.com",
        created_at="2025-03-04T05:06:07.000000Z",
        updated_at="2025-03-05T00:00:00.000000Z",
    )
    answer = httpx.post(f"{server.url}{IMPORT}", json=[run])
    assert answer.status_code == 200, answer.text
    stored = httpx.get(f"{server.url}/api/v1/runs/{run['event_id']}").json()
    assert stored["error_summary"] == "mail [email]"
    assert stored["created_at"] == "2025-03-04T05:06:07.000000Z"
    assert stored["updated_at"] == "2025-03-05T00:00:00.000000Z"
