"""PATCH /api/v1/runs/{event_id}: changing the fields sent, and only valid ones."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from support import new_run

STORED_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
CANONICAL = ("running", "success", "failure", "partial", "timeout", "cancelled")
COUNTERS = ("items_discovered", "items_succeeded", "items_failed", "items_skipped", "duration_ms")


def created(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    """Create a run and return it as the server stored it."""
    run = new_run(**fields)
    assert api.post("/api/v1/runs", json=run).status_code == 201
    return fetch(api, run["event_id"])


def fetch(api: httpx.Client, event_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/runs/{event_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def patch(api: httpx.Client, event_id: str, body: Any) -> httpx.Response:
    return api.patch(f"/api/v1/runs/{event_id}", json=body)


def assert_rejected_unchanged(api: httpx.Client, run: dict[str, Any], body: Any) -> list[Any]:
    """PATCH answers 422 and the stored run is exactly as before; return the errors."""
    response = patch(api, run["event_id"], body)
    assert response.status_code == 422, response.text
    detail: list[Any] = response.json()["detail"]
    assert detail
    assert fetch(api, run["event_id"]) == run
    return detail


def test_patch_answers_fields_updated_in_the_order_sent(api: httpx.Client) -> None:
    run = created(api)
    body = {
        "items_failed": 2,
        "status": "success",
        "end_time": "2026-01-12T10:35:00Z",
        "duration_ms": 300000,
        "items_succeeded": 98,
    }
    response = patch(api, run["event_id"], body)
    assert response.status_code == 200
    assert response.json() == {
        "event_id": run["event_id"],
        "updated": True,
        "fields_updated": ["items_failed", "status", "end_time", "duration_ms", "items_succeeded"],
    }


def test_patch_changes_the_stored_fields_and_sets_updated_at(api: httpx.Client) -> None:
    run = created(api, items_discovered=100)
    assert run["updated_at"] is None
    body = {
        "status": "partial",
        "end_time": "2026-01-12T12:35:00+02:00",
        "duration_ms": 300000,
        "items_succeeded": 85,
        "items_failed": 10,
        "items_skipped": 5,
        "error_summary": "15 items failed validation",
        "error_details": "Traceback ...",
        "output_summary": "done",
        "context_json": {"model": "m"},
    }
    assert patch(api, run["event_id"], body).status_code == 200
    after = fetch(api, run["event_id"])
    expected = {**run, **body, "end_time": "2026-01-12T10:35:00.000000Z"}
    changed_by_server = {"updated_at"}
    assert {k: v for k, v in after.items() if k not in changed_by_server} == {
        k: v for k, v in expected.items() if k not in changed_by_server
    }
    assert STORED_FORM.match(after["updated_at"]), after["updated_at"]
    assert after["updated_at"] >= after["created_at"]


def test_patch_leaves_fields_not_sent_alone(api: httpx.Client) -> None:
    run = created(api, items_discovered=7, product="p", error_summary="kept")
    assert patch(api, run["event_id"], {"items_succeeded": 3}).status_code == 200
    after = fetch(api, run["event_id"])
    assert after["items_succeeded"] == 3
    assert after["items_discovered"] == 7
    assert after["product"] == "p"
    assert after["error_summary"] == "kept"
    assert after["status"] == "running"


def test_repeated_patch_moves_updated_at_forward(api: httpx.Client) -> None:
    run = created(api)
    assert patch(api, run["event_id"], {"items_succeeded": 1}).status_code == 200
    first = fetch(api, run["event_id"])["updated_at"]
    assert patch(api, run["event_id"], {"items_succeeded": 2}).status_code == 200
    second = fetch(api, run["event_id"])
    assert second["items_succeeded"] == 2
    assert second["updated_at"] >= first


@pytest.mark.parametrize("status", CANONICAL)
def test_patch_accepts_every_canonical_status(api: httpx.Client, status: str) -> None:
    run = created(api, status="success" if status == "running" else "running")
    response = patch(api, run["event_id"], {"status": status})
    assert response.status_code == 200
    assert response.json()["fields_updated"] == ["status"]
    assert fetch(api, run["event_id"])["status"] == status


@pytest.mark.parametrize("alias", ["failed", "completed", "succeeded"])
def test_patch_rejects_status_alias(api: httpx.Client, alias: str) -> None:
    run = created(api)
    detail = assert_rejected_unchanged(api, run, {"status": alias})
    assert detail[0]["loc"] == ["body", "status"]
    assert "Status must be one of" in detail[0]["msg"]


@pytest.mark.parametrize("status", ["done", "Success", ""])
def test_patch_rejects_unknown_status(api: httpx.Client, status: str) -> None:
    run = created(api)
    detail = assert_rejected_unchanged(api, run, {"status": status})
    assert "Status must be one of" in detail[0]["msg"]


def test_patch_of_unknown_run_is_404(api: httpx.Client) -> None:
    event_id = f"missing-{uuid.uuid4()}"
    response = patch(api, event_id, {"status": "success"})
    assert response.status_code == 404
    assert response.json() == {"detail": f"Run not found: {event_id}"}
    assert api.get(f"/api/v1/runs/{event_id}").status_code == 404


def test_patch_with_empty_object_is_rejected(api: httpx.Client) -> None:
    run = created(api)
    assert_rejected_unchanged(api, run, {})


@pytest.mark.parametrize("raw", [b"[]", b'[{"status": "success"}]', b'"success"', b"1", b"null"])
def test_patch_with_body_that_is_not_an_object_is_rejected(api: httpx.Client, raw: bytes) -> None:
    run = created(api)
    response = api.patch(
        f"/api/v1/runs/{run['event_id']}", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert fetch(api, run["event_id"]) == run


def test_patch_without_body_is_rejected(api: httpx.Client) -> None:
    run = created(api)
    response = api.patch(f"/api/v1/runs/{run['event_id']}")
    assert response.status_code == 422
    assert fetch(api, run["event_id"]) == run


@pytest.mark.parametrize(
    "field",
    [
        "agent_name",
        "event_id",
        "run_id",
        "job_type",
        "start_time",
        "created_at",
        "updated_at",
        "commit_url",
        "bogus",
    ],
)
def test_patch_rejects_unknown_or_non_patchable_field(api: httpx.Client, field: str) -> None:
    run = created(api)
    value = "2026-01-12T11:00:00Z" if field.endswith(("_time", "_at")) else "changed"
    detail = assert_rejected_unchanged(api, run, {"items_succeeded": 9, field: value})
    assert ["body", field] in [error["loc"] for error in detail]


@pytest.mark.parametrize("field", [*COUNTERS, "status"])
def test_patch_rejects_null_for_counter_or_status(api: httpx.Client, field: str) -> None:
    run = created(api, items_discovered=4)
    detail = assert_rejected_unchanged(api, run, {field: None})
    assert detail[0]["loc"] == ["body", field]


@pytest.mark.parametrize("value", [-1, 1.5, "5", True, 2**63])
@pytest.mark.parametrize("field", COUNTERS)
def test_patch_rejects_invalid_counter(api: httpx.Client, field: str, value: object) -> None:
    run = created(api)
    detail = assert_rejected_unchanged(api, run, {field: value})
    assert ["body", field] in [error["loc"] for error in detail]


def test_patch_null_clears_error_summary(api: httpx.Client) -> None:
    run = created(api, error_summary="boom", error_details="trace")
    response = patch(api, run["event_id"], {"error_summary": None})
    assert response.status_code == 200
    assert response.json()["fields_updated"] == ["error_summary"]
    after = fetch(api, run["event_id"])
    assert after["error_summary"] is None
    assert after["error_details"] == "trace"


@pytest.mark.parametrize("field", ["end_time", "git_commit_timestamp"])
@pytest.mark.parametrize("value", ["2026-01-12T10:35:00", "2026-01-12 10:35", "soon"])
def test_patch_rejects_timestamp_without_timezone(
    api: httpx.Client, field: str, value: str
) -> None:
    run = created(api)
    detail = assert_rejected_unchanged(api, run, {field: value})
    assert detail[0]["loc"] == ["body", field]


def test_patch_stores_end_time_as_utc(api: httpx.Client) -> None:
    run = created(api)
    assert patch(api, run["event_id"], {"end_time": "2026-01-12T05:35:00-05:00"}).status_code == 200
    assert fetch(api, run["event_id"])["end_time"] == "2026-01-12T10:35:00.000000Z"


def test_patch_sets_git_commit_metadata(api: httpx.Client) -> None:
    run = created(api)
    body = {
        "git_commit_source": "llm",
        "git_commit_author": "Claude <noreply@anthropic.com>",
        "git_commit_timestamp": "2026-01-12T12:30:00+02:00",
        "git_commit_hash": "ABCDEF12",
    }
    response = patch(api, run["event_id"], body)
    assert response.status_code == 200
    assert response.json()["fields_updated"] == list(body)
    after = fetch(api, run["event_id"])
    assert after["git_commit_source"] == "llm"
    assert after["git_commit_author"] == "Claude <noreply@anthropic.com>"
    assert after["git_commit_timestamp"] == "2026-01-12T10:30:00.000000Z"
    assert after["git_commit_hash"] == "abcdef12"


@pytest.mark.parametrize(
    "body",
    [{"git_commit_source": "robot"}, {"git_commit_hash": "xyz1234"}, {"git_commit_hash": "abc"}],
)
def test_patch_rejects_invalid_git_commit_fields(api: httpx.Client, body: dict[str, Any]) -> None:
    run = created(api)
    assert_rejected_unchanged(api, run, body)


def test_patch_replaces_metrics_json(api: httpx.Client) -> None:
    run = created(api, metrics_json={"a": 1, "b": 2})
    assert patch(api, run["event_id"], {"metrics_json": {"c": [3]}}).status_code == 200
    assert fetch(api, run["event_id"])["metrics_json"] == {"c": [3]}


@pytest.mark.parametrize("value", [[1], "text", 5])
def test_patch_rejects_metrics_json_that_is_not_an_object(api: httpx.Client, value: object) -> None:
    run = created(api, metrics_json={"a": 1})
    assert_rejected_unchanged(api, run, {"metrics_json": value})


def test_patch_rejects_nul_in_string(api: httpx.Client) -> None:
    run = created(api)
    assert_rejected_unchanged(api, run, {"output_summary": "a\x00b"})


def test_patch_with_one_invalid_field_changes_nothing(api: httpx.Client) -> None:
    run = created(api)
    assert_rejected_unchanged(
        api, run, {"items_succeeded": 10, "error_summary": "x", "status": "failed"}
    )


def test_patch_keeps_duplicate_create_from_resetting_updates(api: httpx.Client) -> None:
    run = new_run()
    assert api.post("/api/v1/runs", json=run).status_code == 201
    assert patch(api, run["event_id"], {"status": "success"}).status_code == 200
    assert api.post("/api/v1/runs", json=run).json()["status"] == "duplicate"
    assert fetch(api, run["event_id"])["status"] == "success"
