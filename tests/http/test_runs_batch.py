"""POST /api/v1/runs/batch: a bare JSON array of runs, per-item errors and duplicates."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import new_run

BATCH = "/api/v1/runs/batch"


def get(api: httpx.Client, event_id: str) -> httpx.Response:
    return api.get(f"/api/v1/runs/{event_id}")


def stored(api: httpx.Client, event_id: str) -> dict[str, Any]:
    response = get(api, event_id)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def test_batch_inserts_every_run(api: httpx.Client) -> None:
    runs = [new_run(items_discovered=i) for i in range(3)]
    response = api.post(BATCH, json=runs)
    assert response.status_code == 200
    assert response.json() == {"inserted": 3, "duplicates": 0, "errors": [], "total": 3}
    for i, run in enumerate(runs):
        got = stored(api, run["event_id"])
        assert got["run_id"] == run["run_id"]
        assert got["items_discovered"] == i


def test_batch_applies_the_create_rules_to_each_item(api: httpx.Client) -> None:
    run = new_run(
        status="failed",
        start_time="2026-01-12T12:00:00+02:00",
        git_commit_hash="ABCDEF1",
        git_commit_source="ci",
        metrics_json={"tokens": 5},
        ignored_field="x",
    )
    assert api.post(BATCH, json=[run]).json()["inserted"] == 1
    got = stored(api, run["event_id"])
    assert got["status"] == "failure"
    assert got["start_time"] == "2026-01-12T10:00:00.000000Z"
    assert got["git_commit_hash"] == "abcdef1"
    assert got["git_commit_source"] == "ci"
    assert got["metrics_json"] == {"tokens": 5}
    assert "ignored_field" not in got


def test_duplicates_within_the_batch_are_counted_and_first_wins(api: httpx.Client) -> None:
    first = new_run()
    second = {**first, "agent_name": first["agent_name"] + "-second"}
    other = new_run()
    response = api.post(BATCH, json=[first, second, other, first])
    assert response.json() == {"inserted": 2, "duplicates": 2, "errors": [], "total": 4}
    assert stored(api, first["event_id"])["agent_name"] == first["agent_name"]
    assert get(api, other["event_id"]).status_code == 200


def test_duplicates_of_existing_runs_are_counted_and_left_unchanged(api: httpx.Client) -> None:
    existing = new_run(items_discovered=1)
    assert api.post("/api/v1/runs", json=existing).status_code == 201
    before = stored(api, existing["event_id"])
    resend = {**existing, "agent_name": "someone-else", "items_discovered": 50}
    fresh = new_run()
    response = api.post(BATCH, json=[resend, fresh])
    assert response.json() == {"inserted": 1, "duplicates": 1, "errors": [], "total": 2}
    assert stored(api, existing["event_id"]) == before
    assert get(api, fresh["event_id"]).status_code == 200


def test_resending_a_whole_batch_counts_only_duplicates(api: httpx.Client) -> None:
    runs = [new_run() for _ in range(5)]
    assert api.post(BATCH, json=runs).json()["inserted"] == 5
    assert api.post(BATCH, json=runs).json() == {
        "inserted": 0,
        "duplicates": 5,
        "errors": [],
        "total": 5,
    }


def test_invalid_items_are_reported_and_valid_neighbours_stored(api: httpx.Client) -> None:
    good_before = new_run()
    missing_job = {k: v for k, v in new_run().items() if k != "job_type"}
    bad_status = new_run(status="exploded")
    good_after = new_run()
    negative = new_run(items_failed=-3)
    response = api.post(BATCH, json=[good_before, missing_job, bad_status, good_after, negative])
    assert response.status_code == 200
    body = response.json()
    assert body["inserted"] == 2
    assert body["duplicates"] == 0
    assert body["total"] == 5
    errors = body["errors"]
    assert [(e["index"], e["event_id"]) for e in errors] == [
        (1, missing_job["event_id"]),
        (2, bad_status["event_id"]),
        (4, negative["event_id"]),
    ]
    assert all(set(e) == {"index", "event_id", "detail"} for e in errors)
    assert "job_type" in errors[0]["detail"]
    assert "Status must be one of" in errors[1]["detail"]
    assert "items_failed" in errors[2]["detail"]
    assert get(api, good_before["event_id"]).status_code == 200
    assert get(api, good_after["event_id"]).status_code == 200
    for bad in (missing_job, bad_status, negative):
        assert get(api, bad["event_id"]).status_code == 404


def test_naive_timestamp_puts_that_item_in_errors(api: httpx.Client) -> None:
    naive = new_run(start_time="2026-01-12T10:30:00")
    good = new_run()
    body = api.post(BATCH, json=[naive, good]).json()
    assert body["inserted"] == 1
    [error] = body["errors"]
    assert error["index"] == 0
    assert error["event_id"] == naive["event_id"]
    assert "start_time" in error["detail"]
    assert "timezone" in error["detail"]
    assert get(api, naive["event_id"]).status_code == 404
    assert get(api, good["event_id"]).status_code == 200


@pytest.mark.parametrize("item", [42, "run", None, [], {"event_id": 7}, {}])
def test_item_without_a_string_event_id_is_reported_with_null_event_id(
    api: httpx.Client, item: object
) -> None:
    good = new_run()
    body = api.post(BATCH, json=[item, good]).json()
    assert body["total"] == 2
    assert body["inserted"] == 1
    [error] = body["errors"]
    assert error["index"] == 0
    assert error["event_id"] is None
    assert error["detail"]


@pytest.mark.parametrize(
    "raw", [b'{"runs": []}', b"{}", b'"runs"', b"1", b"null", b'{"event_id": "x"}']
)
def test_body_that_is_not_an_array_is_rejected(api: httpx.Client, raw: bytes) -> None:
    response = api.post(BATCH, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


def test_object_body_is_rejected_and_stores_nothing(api: httpx.Client) -> None:
    run = new_run()
    response = api.post(BATCH, json=run)
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "Body must be a JSON array"
    assert get(api, run["event_id"]).status_code == 404


def test_more_than_10000_items_is_rejected(api: httpx.Client) -> None:
    response = api.post(BATCH, json=[{}] * 10_001)
    assert response.status_code == 422
    assert "10001" in response.json()["detail"][0]["msg"]


def test_oversized_batch_stores_none_of_its_valid_items(api: httpx.Client) -> None:
    run = new_run()
    response = api.post(BATCH, json=[run] + [{}] * 10_000)
    assert response.status_code == 422
    assert get(api, run["event_id"]).status_code == 404


def test_exactly_10000_items_is_accepted(api: httpx.Client) -> None:
    response = api.post(BATCH, json=[{}] * 10_000)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 10_000
    assert body["inserted"] == 0
    assert len(body["errors"]) == 10_000


def test_empty_array_answers_zeros(api: httpx.Client) -> None:
    response = api.post(BATCH, json=[])
    assert response.status_code == 200
    assert response.json() == {"inserted": 0, "duplicates": 0, "errors": [], "total": 0}


def test_batch_runs_are_queryable_by_agent(api: httpx.Client) -> None:
    agent = new_run()["agent_name"]
    runs = [new_run(agent_name=agent) for _ in range(4)]
    assert api.post(BATCH, json=runs).json()["inserted"] == 4
    listed = api.get("/api/v1/runs", params={"agent_name": agent}).json()
    assert sorted(r["event_id"] for r in listed) == sorted(r["event_id"] for r in runs)
