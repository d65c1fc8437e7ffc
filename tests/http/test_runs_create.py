"""POST /api/v1/runs: creating a run, idempotency and every field rule."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from support import new_run

STORED_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
COUNTERS = ("items_discovered", "items_succeeded", "items_failed", "items_skipped")
REQUIRED = ("event_id", "run_id", "agent_name", "job_type", "start_time")


def create(api: httpx.Client, body: Any) -> httpx.Response:
    return api.post("/api/v1/runs", json=body)


def stored(api: httpx.Client, event_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/runs/{event_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def assert_rejected(api: httpx.Client, body: dict[str, Any], event_id: str) -> list[Any]:
    """POST answers 422 and nothing of the run was stored; return the error list."""
    response = create(api, body)
    assert response.status_code == 422, response.text
    detail: list[Any] = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    assert api.get(f"/api/v1/runs/{event_id}").status_code == 404
    return detail


def locs(detail: list[Any]) -> list[list[Any]]:
    return [error["loc"] for error in detail]


# ----- creation and idempotency -----


def test_create_answers_201_created_with_ids(api: httpx.Client) -> None:
    run = new_run()
    response = create(api, run)
    assert response.status_code == 201
    assert response.json() == {
        "status": "created",
        "event_id": run["event_id"],
        "run_id": run["run_id"],
    }


def test_created_run_is_readable_with_defaults(api: httpx.Client) -> None:
    run = new_run()
    assert create(api, run).status_code == 201
    got = stored(api, run["event_id"])
    assert got["event_id"] == run["event_id"]
    assert got["run_id"] == run["run_id"]
    assert got["agent_name"] == run["agent_name"]
    assert got["job_type"] == run["job_type"]
    assert got["start_time"] == "2026-01-12T10:30:00.000000Z"
    assert got["status"] == "running"
    for counter in (*COUNTERS, "duration_ms"):
        assert got[counter] == 0, counter
    assert got["updated_at"] is None
    assert got["end_time"] is None


def test_optional_fields_are_stored(api: httpx.Client) -> None:
    optional = {
        "end_time": "2026-01-12T10:35:00Z",
        "product": "seo-intelligence",
        "product_family": "content",
        "platform": "web",
        "subdomain": "blog",
        "website": "example.com",
        "website_section": "posts",
        "item_name": "how-to",
        "agent_owner": "team-a",
        "items_discovered": 100,
        "items_succeeded": 85,
        "items_failed": 10,
        "items_skipped": 5,
        "duration_ms": 300000,
        "input_summary": "in",
        "output_summary": "out",
        "source_ref": "src",
        "target_ref": "dst",
        "error_summary": "15 failed",
        "error_details": "Traceback ...",
        "git_repo": "https://github.com/org/repo",
        "git_branch": "main",
        "git_commit_hash": "abc1234567890",
        "git_run_tag": "v1.2.3",
        "host": "build-01",
        "environment": "production",
        "trigger_type": "cron",
        "insight_id": "insight-1",
        "parent_run_id": "parent-1",
        "status": "partial",
    }
    run = new_run(**optional)
    assert create(api, run).status_code == 201
    got = stored(api, run["event_id"])
    for key, value in optional.items():
        expected = "2026-01-12T10:35:00.000000Z" if key == "end_time" else value
        assert got[key] == expected, key


def test_repeated_event_id_answers_201_duplicate(api: httpx.Client) -> None:
    run = new_run()
    assert create(api, run).json()["status"] == "created"
    response = create(api, run)
    assert response.status_code == 201
    assert response.json() == {
        "status": "duplicate",
        "event_id": run["event_id"],
        "message": "Event already exists (idempotent)",
    }


def test_duplicate_does_not_change_the_stored_run(api: httpx.Client) -> None:
    run = new_run(items_discovered=3)
    assert create(api, run).status_code == 201
    before = stored(api, run["event_id"])
    resend = {
        **run,
        "agent_name": run["agent_name"] + "-changed",
        "run_id": "other-run",
        "status": "failure",
        "items_discovered": 99,
        "created_at": "2020-01-01T00:00:00Z",
    }
    response = create(api, resend)
    assert response.status_code == 201
    assert response.json()["status"] == "duplicate"
    assert stored(api, run["event_id"]) == before


# ----- required fields -----


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_required_field_is_rejected(api: httpx.Client, field: str) -> None:
    run = new_run()
    body = {k: v for k, v in run.items() if k != field}
    detail = assert_rejected(api, body, run["event_id"])
    assert ["body", field] in locs(detail)


@pytest.mark.parametrize("field", ["event_id", "run_id", "agent_name", "job_type"])
@pytest.mark.parametrize("value", ["", "x" * 257, None, 5])
def test_identifier_must_be_1_to_256_characters(
    api: httpx.Client, field: str, value: object
) -> None:
    run = new_run()
    detail = assert_rejected(api, {**run, field: value}, run["event_id"])
    assert ["body", field] in locs(detail)


def test_identifier_of_256_characters_is_accepted(api: httpx.Client) -> None:
    run = new_run(run_id="r" * 256)
    assert create(api, run).status_code == 201
    assert stored(api, run["event_id"])["run_id"] == "r" * 256


@pytest.mark.parametrize("raw", [b"[]", b'"run"', b"42", b"null"])
def test_body_that_is_not_an_object_is_rejected(api: httpx.Client, raw: bytes) -> None:
    response = api.post("/api/v1/runs", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


def test_empty_body_is_rejected(api: httpx.Client) -> None:
    response = api.post("/api/v1/runs")
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "Request body is empty"


def test_invalid_json_is_rejected(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/runs", content=b'{"event_id": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "Invalid JSON" in response.json()["detail"][0]["msg"]


# ----- timestamps -----


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-12T10:30:00",
        "2026-01-12 10:30:00",
        "2026-01-12",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "",
        1736677800,
    ],
)
@pytest.mark.parametrize("field", ["start_time", "end_time", "created_at"])
def test_timestamp_without_timezone_or_unparsable_is_rejected(
    api: httpx.Client, field: str, value: object
) -> None:
    run = new_run()
    detail = assert_rejected(api, {**run, field: value}, run["event_id"])
    assert ["body", field] in locs(detail)


def test_naive_timestamp_error_says_timezone_is_missing(api: httpx.Client) -> None:
    run = new_run(start_time="2026-01-12T10:30:00")
    detail = assert_rejected(api, run, run["event_id"])
    assert "timezone" in detail[0]["msg"]


def test_timestamp_with_offset_is_stored_as_utc(api: httpx.Client) -> None:
    run = new_run(
        start_time="2026-01-12T12:00:00+02:00",
        end_time="2026-01-12T05:30:00.5-05:00",
        created_at="2026-01-12T10:00:00.123456Z",
    )
    assert create(api, run).status_code == 201
    got = stored(api, run["event_id"])
    assert got["start_time"] == "2026-01-12T10:00:00.000000Z"
    assert got["end_time"] == "2026-01-12T10:30:00.500000Z"
    assert got["created_at"] == "2026-01-12T10:00:00.123456Z"


def test_omitted_created_at_is_server_time_in_stored_form(api: httpx.Client) -> None:
    run = new_run()
    before = datetime.now(UTC) - timedelta(seconds=2)
    assert create(api, run).status_code == 201
    after = datetime.now(UTC) + timedelta(seconds=2)
    created_at = stored(api, run["event_id"])["created_at"]
    assert STORED_FORM.match(created_at), created_at
    assert before <= datetime.fromisoformat(created_at) <= after


# ----- status -----


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("failed", "failure"), ("completed", "success"), ("succeeded", "success")],
)
def test_status_alias_is_normalized(api: httpx.Client, sent: str, kept: str) -> None:
    run = new_run(status=sent)
    assert create(api, run).status_code == 201
    assert stored(api, run["event_id"])["status"] == kept


@pytest.mark.parametrize(
    "status", ["running", "success", "failure", "partial", "timeout", "cancelled"]
)
def test_canonical_status_is_stored_as_sent(api: httpx.Client, status: str) -> None:
    run = new_run(status=status)
    assert create(api, run).status_code == 201
    assert stored(api, run["event_id"])["status"] == status


@pytest.mark.parametrize("status", ["done", "SUCCESS", "Failed", "", None, 1])
def test_unknown_status_is_rejected(api: httpx.Client, status: object) -> None:
    run = new_run(status=status)
    detail = assert_rejected(api, run, run["event_id"])
    assert detail[0]["loc"] == ["body", "status"]
    assert "Status must be one of" in detail[0]["msg"]


# ----- counters and duration -----


@pytest.mark.parametrize("value", [-1, 1.5, 5.0, "5", True, False, 2**63, 2**64, [], {}])
@pytest.mark.parametrize("field", [*COUNTERS, "duration_ms"])
def test_counter_must_be_a_non_negative_int64(api: httpx.Client, field: str, value: object) -> None:
    run = new_run()
    detail = assert_rejected(api, {**run, field: value}, run["event_id"])
    assert ["body", field] in locs(detail)


@pytest.mark.parametrize("field", [*COUNTERS, "duration_ms"])
def test_counter_bounds_are_accepted(api: httpx.Client, field: str) -> None:
    low, high = new_run(**{field: 0}), new_run(**{field: 2**63 - 1})
    assert create(api, low).status_code == 201
    assert create(api, high).status_code == 201
    assert stored(api, low["event_id"])[field] == 0
    assert stored(api, high["event_id"])[field] == 2**63 - 1


# ----- JSON fields -----


@pytest.mark.parametrize("field", ["metrics_json", "context_json"])
def test_json_field_is_stored_and_returned_as_an_object(api: httpx.Client, field: str) -> None:
    value = {
        "input_tokens": 1500,
        "cost": 0.05,
        "model": "claude",
        "features": ["a", "b"],
        "nested": {"ok": True, "none": None},
    }
    run = new_run(**{field: value})
    assert create(api, run).status_code == 201
    assert stored(api, run["event_id"])[field] == value
    listed = api.get("/api/v1/runs", params={"agent_name": run["agent_name"]}).json()
    assert listed[0][field] == value


@pytest.mark.parametrize("value", [[1, 2], '{"a": 1}', 3, True])
@pytest.mark.parametrize("field", ["metrics_json", "context_json"])
def test_json_field_that_is_not_an_object_is_rejected(
    api: httpx.Client, field: str, value: object
) -> None:
    run = new_run()
    detail = assert_rejected(api, {**run, field: value}, run["event_id"])
    assert ["body", field] in locs(detail)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_number_in_json_field_is_rejected(api: httpx.Client, token: str) -> None:
    run = new_run(metrics_json={"x": "PLACEHOLDER"})
    raw = json.dumps(run).replace('"PLACEHOLDER"', token)
    response = api.post(
        "/api/v1/runs", content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert api.get(f"/api/v1/runs/{run['event_id']}").status_code == 404


# ----- strings -----


@pytest.mark.parametrize(
    "field", ["agent_name", "run_id", "event_id", "job_type", "product", "error_summary"]
)
def test_nul_character_in_string_is_rejected(api: httpx.Client, field: str) -> None:
    run = new_run()
    detail = assert_rejected(api, {**run, field: f"bad\x00{field}"}, run["event_id"])
    assert ["body", field] in locs(detail)


def test_unicode_strings_round_trip(api: httpx.Client) -> None:
    run = new_run(output_summary="héllo ✓ 日本 🚀", error_details="line1\nline2\ttab")
    assert create(api, run).status_code == 201
    got = stored(api, run["event_id"])
    assert got["output_summary"] == "héllo ✓ 日本 🚀"
    assert got["error_details"] == "line1\nline2\ttab"


# ----- git fields -----


def test_git_commit_metadata_sent_on_create_is_persisted(api: httpx.Client) -> None:
    run = new_run(
        git_repo="https://github.com/org/repo",
        git_branch="main",
        git_commit_hash="abc1234",
        git_commit_source="llm",
        git_commit_author="Claude Code <noreply@anthropic.com>",
        git_commit_timestamp="2026-01-12T12:35:00+02:00",
    )
    assert create(api, run).status_code == 201
    got = stored(api, run["event_id"])
    assert got["git_commit_source"] == "llm"
    assert got["git_commit_author"] == "Claude Code <noreply@anthropic.com>"
    assert got["git_commit_timestamp"] == "2026-01-12T10:35:00.000000Z"
    assert got["git_commit_hash"] == "abc1234"


@pytest.mark.parametrize(
    "commit_hash",
    ["abc123", "g" * 7, "abc123z", "a" * 41, "", "abc 1234", "0x12345678", 1234567],
)
def test_invalid_git_commit_hash_is_rejected(api: httpx.Client, commit_hash: object) -> None:
    run = new_run(git_commit_hash=commit_hash)
    detail = assert_rejected(api, run, run["event_id"])
    assert ["body", "git_commit_hash"] in locs(detail)


@pytest.mark.parametrize("commit_hash", ["a" * 7, "0123456789abcdef0123456789abcdef01234567"])
def test_git_commit_hash_of_7_to_40_hex_digits_is_accepted(
    api: httpx.Client, commit_hash: str
) -> None:
    run = new_run(git_commit_hash=commit_hash)
    assert create(api, run).status_code == 201
    assert stored(api, run["event_id"])["git_commit_hash"] == commit_hash


def test_upper_case_git_commit_hash_is_stored_lower_case(api: httpx.Client) -> None:
    run = new_run(git_commit_hash="ABCDEF1234")
    assert create(api, run).status_code == 201
    assert stored(api, run["event_id"])["git_commit_hash"] == "abcdef1234"


@pytest.mark.parametrize("source", ["manual", "llm", "ci"])
def test_git_commit_source_values_are_accepted(api: httpx.Client, source: str) -> None:
    run = new_run(git_commit_source=source)
    assert create(api, run).status_code == 201
    assert stored(api, run["event_id"])["git_commit_source"] == source


@pytest.mark.parametrize("source", ["human", "LLM", "", 1])
def test_git_commit_source_outside_manual_llm_ci_is_rejected(
    api: httpx.Client, source: object
) -> None:
    run = new_run(git_commit_source=source)
    detail = assert_rejected(api, run, run["event_id"])
    assert ["body", "git_commit_source"] in locs(detail)


# ----- extra fields -----


def test_unknown_fields_are_ignored(api: httpx.Client) -> None:
    run = new_run(bogus_field="x", another={"nested": 1}, commit_url="https://evil.example")
    response = create(api, run)
    assert response.status_code == 201
    assert response.json()["status"] == "created"
    got = stored(api, run["event_id"])
    assert "bogus_field" not in got
    assert "another" not in got
    assert got["commit_url"] is None


def test_one_bad_field_rejects_the_whole_run(api: httpx.Client) -> None:
    run = new_run(items_discovered=5, product="ok", duration_ms=-1)
    detail = assert_rejected(api, run, run["event_id"])
    assert locs(detail) == [["body", "duration_ms"]]


def test_every_invalid_field_is_reported(api: httpx.Client) -> None:
    run = new_run(status="nope", items_failed=-1, start_time="2026-01-12T10:30:00")
    detail = assert_rejected(api, run, run["event_id"])
    assert sorted(loc[1] for loc in locs(detail)) == ["items_failed", "start_time", "status"]


def test_create_rejects_an_event_id_with_a_slash_that_could_never_be_addressed(
    api: httpx.Client,
) -> None:
    run = new_run(event_id="a/b-" + new_run()["event_id"])
    response = api.post("/api/v1/runs", json=run)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "event_id"]
    assert "/" in response.json()["detail"][0]["msg"]
