"""Health, metrics, metadata and docs endpoints through a real server."""

from __future__ import annotations

import httpx

from support import ServerProcess, new_run


def test_health_reports_durable_storage(api: httpx.Client, shared_server: ServerProcess) -> None:
    body = api.get("/health").json()
    assert body["status"] == "ok"
    assert body["version"] == "3.0.0"
    assert body["journal_mode"] == "WAL"
    assert body["synchronous"] == "FULL"
    if shared_server.database_url is None:
        assert body["backend"] == "sqlite"
        assert body["db_path"].endswith("telemetry.sqlite")
    else:  # LT_TEST_BACKEND=postgres: the database URL (it has no password to hide)
        assert body["backend"] == "postgresql"
        assert body["db_path"] == shared_server.database_url


def test_metrics_count_runs_per_agent(api: httpx.Client) -> None:
    run = new_run()
    before = api.get("/metrics").json()
    assert api.post("/api/v1/runs", json=run).status_code == 201
    assert (
        api.post("/api/v1/runs", json={**run, "event_id": run["event_id"] + "-2"}).status_code
        == 201
    )
    after = api.get("/metrics").json()
    assert after["total_runs"] == before["total_runs"] + 2
    assert after["agents"][run["agent_name"]] == 2
    assert after["recent_24h"] == before["recent_24h"] + 2
    assert after["performance"]["journal_mode"] == "WAL"


def test_metadata_cache_is_invalidated_by_a_new_agent(api: httpx.Client) -> None:
    api.get("/api/v1/metadata")
    cached = api.get("/api/v1/metadata").json()
    assert cached["cache_hit"] is True
    run = new_run(job_type="brand-new-job-type")
    assert api.post("/api/v1/runs", json=run).status_code == 201
    fresh = api.get("/api/v1/metadata").json()
    assert fresh["cache_hit"] is False
    assert run["agent_name"] in fresh["agent_names"]
    assert "brand-new-job-type" in fresh["job_types"]
    assert fresh["counts"]["agent_names"] == len(fresh["agent_names"])
    assert fresh["agent_names"] == sorted(fresh["agent_names"])


def test_docs_and_openapi_are_served(api: httpx.Client) -> None:
    assert "swagger" in api.get("/docs").text.lower()
    assert "redoc" in api.get("/redoc").text.lower()
    spec = api.get("/openapi.json").json()
    for path in (
        "/api/v1/runs",
        "/api/v1/runs/batch",
        "/api/v1/runs/{event_id}",
        "/api/v1/runs/{event_id}/associate-commit",
        "/api/v1/runs/{event_id}/commit-url",
        "/api/v1/runs/{event_id}/repo-url",
        "/api/v1/runs/{event_id}/events",
        "/api/v1/metadata",
        "/health",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert "RunCreate" in spec["components"]["schemas"]
    assert "start_time" in spec["components"]["schemas"]["RunCreate"]["required"]


def test_version_endpoint(api: httpx.Client) -> None:
    import platform

    from local_telemetry import __version__

    response = api.get("/version")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "version": "3.0.0",
        "server_version": __version__,
        "python": platform.python_version(),
        "backend": body["backend"],
    }
    assert body["backend"] in ("sqlite", "postgresql")
    assert body["backend"] == api.get("/health").json()["backend"]
