"""POST /api/agent-runs (the agent-metrics runbook) through the real server."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from support import StartServer

STARTED = "2026-01-12T10:30:00Z"
ENDED = "2026-01-12T10:32:05.5+00:00"


def agent_run(**fields: Any) -> dict[str, Any]:
    """A valid start record with a fresh run_id and agent name; override freely."""
    body: dict[str, Any] = {
        "run_id": str(uuid.uuid4()),
        "agent_name": f"agent-{uuid.uuid4().hex[:12]}",
        "started_at": STARTED,
    }
    body.update(fields)
    return body


def post(api: httpx.Client, body: Any) -> httpx.Response:
    return api.post("/api/agent-runs", json=body)


def stored(api: httpx.Client, run_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def qc_of(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/agent-runs/{run_id}/qc")
    assert response.status_code == 200, response.text
    reviews: list[dict[str, Any]] = response.json()
    return reviews


def assert_answer(response: httpx.Response, status: str, run_id: str) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"status": status, "run_id": run_id}


def assert_rejected(api: httpx.Client, body: Any, field: str | None = None) -> None:
    """422 in the API's error shape, naming ``field`` if given; no run stored."""
    response = post(api, body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    if field is not None:
        assert any(field in error["loc"] for error in detail), detail
    if isinstance(body, dict) and isinstance(body.get("run_id"), str):
        assert api.get(f"/api/v1/runs/{body['run_id']}").status_code == 404


# ----- create -----


def test_a_start_record_creates_a_running_run(api: httpx.Client) -> None:
    body = agent_run(input_kind="chat", metadata={"channel": "email"})
    assert_answer(post(api, body), "created", body["run_id"])
    run = stored(api, body["run_id"])
    assert run["event_id"] == run["run_id"] == body["run_id"]
    assert run["agent_name"] == body["agent_name"]
    assert run["job_type"] == "agent_run"
    assert run["status"] == "running"
    assert run["start_time"] == "2026-01-12T10:30:00.000000Z"
    assert run["end_time"] is None
    assert run["resolution"] is None
    assert run["input_kind"] == "chat"
    assert run["context_json"] == {"channel": "email"}
    assert run["metrics_json"] is None


def test_a_complete_record_is_stored_in_one_post(api: httpx.Client) -> None:
    body = agent_run(
        job_type="support",
        ended_at=ENDED,
        resolution="escalated",
        self_corrected=True,
        tokens_input=1200,
        tokens_output=300,
        cost_usd=0.0123,
        sla_target_seconds=300,
    )
    assert_answer(post(api, body), "created", body["run_id"])
    run = stored(api, body["run_id"])
    assert run["job_type"] == "support"
    assert run["status"] == "partial"
    assert run["resolution"] == "escalated"
    assert run["end_time"] == "2026-01-12T10:32:05.500000Z"
    assert run["duration_ms"] == 125_500
    expected = (True, 1200, 300, 0.0123, 300)
    fields = ("self_corrected", "tokens_input", "tokens_output", "cost_usd", "sla_target_seconds")
    assert tuple(run[f] for f in fields) == expected


def test_started_at_defaults_to_the_time_received(api: httpx.Client) -> None:
    body = agent_run()
    del body["started_at"]
    assert_answer(post(api, body), "created", body["run_id"])
    run = stored(api, body["run_id"])
    assert run["start_time"] >= "2026-01-01"
    assert run["created_at"] >= run["start_time"][:19]


def test_an_ended_run_without_started_at_does_not_start_after_it_ended(
    api: httpx.Client,
) -> None:
    body = agent_run(ended_at=ENDED, resolution="resolved")
    del body["started_at"]
    assert_answer(post(api, body), "created", body["run_id"])
    run = stored(api, body["run_id"])
    assert run["start_time"] == run["end_time"] == "2026-01-12T10:32:05.500000Z"
    assert (run["status"], run["duration_ms"]) == ("success", 0)


def test_an_identical_resend_is_a_duplicate_and_changes_nothing(api: httpx.Client) -> None:
    body = agent_run(ended_at=ENDED, resolution="resolved", tokens_input=5, qc=[{"score": 4}])
    assert_answer(post(api, body), "created", body["run_id"])
    before = stored(api, body["run_id"])
    assert_answer(post(api, body), "duplicate", body["run_id"])
    assert stored(api, body["run_id"]) == before
    assert len(qc_of(api, body["run_id"])) == 1


def test_a_resent_start_record_is_a_duplicate(api: httpx.Client) -> None:
    body = agent_run()
    assert_answer(post(api, body), "created", body["run_id"])
    before = stored(api, body["run_id"])
    assert_answer(post(api, body), "duplicate", body["run_id"])
    assert stored(api, body["run_id"]) == before


# ----- start, then end -----


@pytest.mark.parametrize(
    ("resolution", "status"),
    [("resolved", "success"), ("escalated", "partial"), ("failed", "failure")],
)
def test_start_then_end_completes_the_run(api: httpx.Client, resolution: str, status: str) -> None:
    start = agent_run(input_kind="email", sla_target_seconds=600)
    assert_answer(post(api, start), "created", start["run_id"])
    assert stored(api, start["run_id"])["status"] == "running"
    end = {
        "run_id": start["run_id"],
        "agent_name": start["agent_name"],
        "ended_at": ENDED,
        "resolution": resolution,
        "tokens_input": 10,
        "tokens_output": 20,
        "cost_usd": 0.5,
    }
    assert_answer(post(api, end), "updated", start["run_id"])
    run = stored(api, start["run_id"])
    assert run["status"] == status
    assert run["resolution"] == resolution
    assert run["duration_ms"] == 125_500
    assert run["start_time"] == "2026-01-12T10:30:00.000000Z"
    assert (run["input_kind"], run["sla_target_seconds"]) == ("email", 600)
    assert (run["tokens_input"], run["tokens_output"], run["cost_usd"]) == (10, 20, 0.5)
    assert run["updated_at"] is not None
    assert_answer(post(api, end), "duplicate", start["run_id"])


def test_a_running_run_takes_later_values(api: httpx.Client) -> None:
    start = agent_run(tokens_input=1, metadata={"a": 1})
    post(api, start)
    again = {**start, "tokens_input": 7, "metadata": {"b": 2}}
    assert_answer(post(api, again), "updated", start["run_id"])
    run = stored(api, start["run_id"])
    assert run["tokens_input"] == 7
    assert run["status"] == "running"
    assert run["context_json"] == {"a": 1, "b": 2}


def test_an_ended_run_accepts_usage_it_did_not_have(api: httpx.Client) -> None:
    body = agent_run(ended_at=ENDED, resolution="resolved")
    post(api, body)
    assert_answer(post(api, {**body, "tokens_output": 42}), "updated", body["run_id"])
    run = stored(api, body["run_id"])
    assert (run["tokens_output"], run["status"]) == (42, "success")


@pytest.mark.parametrize(
    "change",
    [
        {"ended_at": "2026-01-12T10:40:00Z"},
        {"resolution": "failed"},
        {"tokens_input": 11},
        {"cost_usd": 0.25},
        {"started_at": "2026-01-12T10:00:00Z"},
        {"metadata": {"channel": "chat"}},
        {"agent_name": "someone-else"},
        {"job_type": "other"},
    ],
)
def test_a_post_contradicting_an_ended_run_is_a_conflict(
    api: httpx.Client, change: dict[str, Any]
) -> None:
    body = agent_run(
        ended_at=ENDED,
        resolution="resolved",
        tokens_input=10,
        cost_usd=0.5,
        metadata={"channel": "email"},
    )
    post(api, body)
    before = stored(api, body["run_id"])
    response = post(api, {**body, **change, "qc": [{"score": 1}]})
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert body["run_id"] in detail
    assert stored(api, body["run_id"]) == before
    assert qc_of(api, body["run_id"]) == []


def test_another_agent_name_for_a_running_run_is_a_conflict(api: httpx.Client) -> None:
    body = agent_run()
    post(api, body)
    response = post(api, {**body, "agent_name": "intruder"})
    assert response.status_code == 409
    assert "agent_name" in response.json()["detail"]


# ----- rejected posts -----


def test_ended_at_before_started_at_is_rejected(api: httpx.Client) -> None:
    body = agent_run(ended_at="2026-01-12T10:29:59Z", resolution="resolved")
    assert_rejected(api, body)


def test_ended_at_before_an_earlier_posts_started_at_is_rejected(api: httpx.Client) -> None:
    start = agent_run()
    post(api, start)
    before = stored(api, start["run_id"])
    end = {
        "run_id": start["run_id"],
        "agent_name": start["agent_name"],
        "ended_at": "2026-01-12T11:29:59+01:00",  # 10:29:59Z
        "resolution": "resolved",
    }
    response = post(api, end)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "ended_at"]
    assert stored(api, start["run_id"]) == before


def test_ended_at_without_resolution_is_rejected(api: httpx.Client) -> None:
    assert_rejected(api, agent_run(ended_at=ENDED))


@pytest.mark.parametrize(
    "run_id",
    [
        "not-a-uuid",
        "",
        "550e8400e29b41d4a716446655440000",
        "{550e8400-e29b-41d4-a716-446655440000}",
        "urn:uuid:550e8400-e29b-41d4-a716-446655440000",
        "550e8400-e29b-41d4-a716-44665544000g",
        42,
        None,
    ],
)
def test_a_run_id_that_is_not_a_uuid_is_rejected(api: httpx.Client, run_id: Any) -> None:
    response = post(api, agent_run(run_id=run_id))
    assert response.status_code == 422, response.text
    assert any("run_id" in error["loc"] for error in response.json()["detail"])


def test_an_upper_case_uuid_is_accepted_as_sent(api: httpx.Client) -> None:
    body = agent_run(run_id=str(uuid.uuid4()).upper())
    assert_answer(post(api, body), "created", body["run_id"])
    assert stored(api, body["run_id"])["event_id"] == body["run_id"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("agent_name", None),
        ("agent_name", ""),
        ("agent_name", "a\x00b"),
        ("agent_name", 5),
        ("job_type", ""),
        ("input_kind", "x" * 257),
        ("started_at", "2026-01-12T10:30:00"),
        ("started_at", "yesterday"),
        ("started_at", 1736677800),
        ("ended_at", "2026-01-12 10:30"),
        ("resolution", "done"),
        ("resolution", "RESOLVED"),
        ("self_corrected", 1),
        ("self_corrected", "true"),
        ("tokens_input", -1),
        ("tokens_input", 1.5),
        ("tokens_input", "3"),
        ("tokens_output", True),
        ("tokens_output", 2**63),
        ("cost_usd", -0.01),
        ("cost_usd", "0.05"),
        ("cost_usd", False),
        ("sla_target_seconds", 0),
        ("sla_target_seconds", -5),
        ("sla_target_seconds", 1.5),
        ("metadata", [1, 2]),
        ("metadata", "text"),
        ("qc", {"score": 3}),
        ("qc", [{"score": 0}]),
        ("qc", [{"score": 6}]),
        ("qc", [{"score": 2.5}]),
        ("qc", [{"score": "3"}]),
        ("qc", [{"score": True}]),
        ("qc", [{"notes": "no score"}]),
        ("qc", [{"score": 3, "reviewer": "x" * 257}]),
    ],
)
def test_every_field_rule_is_enforced(api: httpx.Client, field: str, value: Any) -> None:
    body = {**agent_run(ended_at=ENDED, resolution="resolved"), field: value}
    assert_rejected(api, body, field)


def test_missing_agent_name_is_rejected(api: httpx.Client) -> None:
    body = agent_run()
    del body["agent_name"]
    assert_rejected(api, body, "agent_name")


@pytest.mark.parametrize("body", [b"", b"[]", b"{", b'{"cost_usd": NaN}'])
def test_bodies_that_are_not_a_run_object_are_rejected(api: httpx.Client, body: bytes) -> None:
    response = api.post(
        "/api/agent-runs", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text


def test_a_non_json_content_type_is_refused(api: httpx.Client) -> None:
    response = api.post("/api/agent-runs", content=b"{}", headers={"content-type": "text/plain"})
    assert response.status_code == 415


def test_unknown_fields_are_ignored(api: httpx.Client) -> None:
    body = agent_run(api_posted=True, status="failure", not_a_field=1)
    response = post(api, body)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "created",
        "run_id": body["run_id"],
        "ignored_fields": ["api_posted", "not_a_field", "status"],
    }
    assert stored(api, body["run_id"])["status"] == "running"


# ----- QC reviews in the body -----


def test_qc_events_in_the_body_are_stored_with_the_run(api: httpx.Client) -> None:
    body = agent_run(
        ended_at=ENDED,
        resolution="resolved",
        qc=[{"score": 5, "notes": "great", "reviewer": "ana"}, {"score": 3}],
    )
    assert_answer(post(api, body), "created", body["run_id"])
    reviews = qc_of(api, body["run_id"])
    assert [(r["score"], r["notes"], r["reviewer"]) for r in reviews] == [
        (5, "great", "ana"),
        (3, None, None),
    ]
    assert all(r["event_id"] == body["run_id"] for r in reviews)


def test_a_later_post_adds_only_new_qc_events(api: httpx.Client) -> None:
    body = agent_run(ended_at=ENDED, resolution="resolved", qc=[{"score": 4}])
    post(api, body)
    again = {**body, "qc": [{"score": 4}, {"score": 2, "notes": "late review"}]}
    assert_answer(post(api, again), "updated", body["run_id"])
    assert [r["score"] for r in qc_of(api, body["run_id"])] == [4, 2]


def test_a_rejected_post_stores_no_qc_events(api: httpx.Client) -> None:
    body = agent_run(qc=[{"score": 4}, {"score": 9}])
    assert_rejected(api, body, "qc")


# ----- concurrency -----


def test_concurrent_posts_of_one_new_run_create_it_once(api: httpx.Client) -> None:
    body = agent_run(ended_at=ENDED, resolution="resolved", qc=[{"score": 5}])

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=str(api.base_url), timeout=30) as client:
            return post(client, body)

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(send, range(10)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["created"] + ["duplicate"] * 9
    listed = api.get("/api/v1/runs", params={"agent_name": body["agent_name"]}).json()
    assert [run["event_id"] for run in listed] == [body["run_id"]]
    assert len(qc_of(api, body["run_id"])) == 1


def test_concurrent_start_and_end_posts_end_the_run(api: httpx.Client) -> None:
    start = agent_run()
    end = {**start, "ended_at": ENDED, "resolution": "failed"}

    def send(index: int) -> httpx.Response:
        with httpx.Client(base_url=str(api.base_url), timeout=30) as client:
            return post(client, end if index % 2 else start)

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(send, range(10)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert [r.json()["status"] for r in responses].count("created") == 1
    run = stored(api, start["run_id"])
    assert (run["status"], run["duration_ms"]) == ("failure", 125_500)


# ----- around the endpoint -----


def test_the_endpoint_is_documented(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert "post" in schema["paths"]["/api/agent-runs"]
    assert {"post", "get"} <= set(schema["paths"]["/api/agent-runs/{run_id}/qc"])
    assert "AgentRunPost" in schema["components"]["schemas"]
    assert "QcCreate" in schema["components"]["schemas"]


def test_auth_covers_agent_runs(start_server: StartServer) -> None:
    server = start_server(TELEMETRY_API_AUTH_ENABLED="true", TELEMETRY_API_AUTH_TOKEN="s3cret")
    body = agent_run()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert post(client, body).status_code == 401
        headers = {"authorization": "Bearer s3cret"}
        response = client.post("/api/agent-runs", json=body, headers=headers)
        assert_answer(response, "created", body["run_id"])


def test_a_created_agent_run_appears_in_metadata(api: httpx.Client) -> None:
    api.get("/api/v1/metadata")  # warm the cache first: the post must refresh it
    body = agent_run()
    post(api, body)
    metadata = api.get("/api/v1/metadata").json()
    assert body["agent_name"] in metadata["agent_names"]
    assert "agent_run" in metadata["job_types"]
