"""GET /api/v1/runs and GET /api/v1/runs/{event_id}: filters, ordering and paging.

The shared server's database holds every other test's runs too, so each test uses its
own agent name and filters by it.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from support import new_run

RUNS = "/api/v1/runs"


def unique_agent() -> str:
    return f"query-agent-{uuid.uuid4().hex[:12]}"


def insert(api: httpx.Client, runs: list[dict[str, Any]]) -> None:
    result = api.post(f"{RUNS}/batch", json=runs).json()
    assert result["inserted"] == len(runs), result


def query(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = api.get(RUNS, params=params)
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()
    assert isinstance(runs, list)
    return runs


def ids(runs: list[dict[str, Any]]) -> list[str]:
    return [run["event_id"] for run in runs]


def created_at_minute(agent: str, minute: int, **fields: Any) -> dict[str, Any]:
    return new_run(agent_name=agent, created_at=f"2026-01-12T10:{minute:02d}:00Z", **fields)


# ----- ordering and paging -----


def test_runs_are_ordered_by_created_at_newest_first(api: httpx.Client) -> None:
    agent = unique_agent()
    runs = [created_at_minute(agent, m) for m in (20, 5, 40, 0, 33)]
    insert(api, runs)
    listed = query(api, agent_name=agent)
    assert [r["created_at"] for r in listed] == [
        "2026-01-12T10:40:00.000000Z",
        "2026-01-12T10:33:00.000000Z",
        "2026-01-12T10:20:00.000000Z",
        "2026-01-12T10:05:00.000000Z",
        "2026-01-12T10:00:00.000000Z",
    ]


def test_runs_without_created_at_list_newest_first(api: httpx.Client) -> None:
    agent = unique_agent()
    runs = [new_run(agent_name=agent) for _ in range(3)]
    for run in runs:
        assert api.post(RUNS, json=run).status_code == 201
    assert ids(query(api, agent_name=agent)) == [run["event_id"] for run in reversed(runs)]


def test_ordering_compares_instants_across_offsets(api: httpx.Client) -> None:
    agent = unique_agent()
    early = new_run(agent_name=agent, created_at="2026-01-12T11:00:00+05:00")  # 06:00Z
    late = new_run(agent_name=agent, created_at="2026-01-12T08:00:00-02:00")  # 10:00Z
    insert(api, [early, late])
    assert ids(query(api, agent_name=agent)) == [late["event_id"], early["event_id"]]


def test_default_limit_is_100(api: httpx.Client) -> None:
    agent = unique_agent()
    runs = [
        new_run(agent_name=agent, created_at=f"2026-01-12T10:{i // 60:02d}:{i % 60:02d}Z")
        for i in range(101)
    ]
    insert(api, runs)
    listed = query(api, agent_name=agent)
    assert len(listed) == 100
    assert runs[0]["event_id"] not in ids(listed)  # the oldest is the one left out
    assert len(query(api, agent_name=agent, limit=1000)) == 101


@pytest.mark.parametrize("limit", [1, 2, 1000])
def test_limit_caps_the_number_of_runs(api: httpx.Client, limit: int) -> None:
    agent = unique_agent()
    insert(api, [created_at_minute(agent, m) for m in range(3)])
    listed = query(api, agent_name=agent, limit=limit)
    assert len(listed) == min(limit, 3)
    assert listed[0]["created_at"] == "2026-01-12T10:02:00.000000Z"


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5", ""])
def test_limit_outside_1_to_1000_is_rejected(api: httpx.Client, limit: str) -> None:
    response = api.get(RUNS, params={"limit": limit})
    assert response.status_code == 422
    assert any("limit" in error["loc"] for error in response.json()["detail"])


@pytest.mark.parametrize("offset", ["-1", "abc"])
def test_invalid_offset_is_rejected(api: httpx.Client, offset: str) -> None:
    response = api.get(RUNS, params={"offset": offset})
    assert response.status_code == 422
    assert any("offset" in error["loc"] for error in response.json()["detail"])


def test_offset_pages_through_the_runs(api: httpx.Client) -> None:
    agent = unique_agent()
    insert(api, [created_at_minute(agent, m) for m in range(5)])
    everything = ids(query(api, agent_name=agent))
    assert len(everything) == 5
    pages = [ids(query(api, agent_name=agent, limit=2, offset=o)) for o in (0, 2, 4, 6)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    assert pages[0] + pages[1] + pages[2] == everything


# ----- filters -----


def test_agent_name_filter_is_exact(api: httpx.Client) -> None:
    agent = unique_agent()
    mine = new_run(agent_name=agent)
    prefix = new_run(agent_name=agent + "-suffix")
    insert(api, [mine, prefix])
    assert ids(query(api, agent_name=agent)) == [mine["event_id"]]


def test_job_type_filter(api: httpx.Client) -> None:
    agent = unique_agent()
    job = f"job-{uuid.uuid4().hex[:8]}"
    a = new_run(agent_name=agent, job_type=job)
    b = new_run(agent_name=agent, job_type="other-job")
    insert(api, [a, b])
    assert ids(query(api, job_type=job)) == [a["event_id"]]
    assert ids(query(api, agent_name=agent, job_type="other-job")) == [b["event_id"]]


def test_run_id_filter(api: httpx.Client) -> None:
    agent = unique_agent()
    run_id = f"run-{uuid.uuid4()}"
    first = created_at_minute(agent, 1, run_id=run_id)
    second = created_at_minute(agent, 2, run_id=run_id)
    other = created_at_minute(agent, 3)
    insert(api, [first, second, other])
    assert ids(query(api, run_id=run_id)) == [second["event_id"], first["event_id"]]


def test_parent_run_id_filter(api: httpx.Client) -> None:
    agent = unique_agent()
    parent = f"parent-{uuid.uuid4()}"
    child = new_run(agent_name=agent, parent_run_id=parent)
    insert(api, [child, new_run(agent_name=agent)])
    assert ids(query(api, parent_run_id=parent)) == [child["event_id"]]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("failure", "failure"),
        ("failed", "failure"),
        ("success", "success"),
        ("completed", "success"),
        ("succeeded", "success"),
        ("running", "running"),
        ("partial", "partial"),
        ("timeout", "timeout"),
        ("cancelled", "cancelled"),
    ],
)
def test_status_filter_accepts_canonical_values_and_aliases(
    api: httpx.Client, status: str, expected: str
) -> None:
    agent = unique_agent()
    runs = {
        s: new_run(agent_name=agent, status=s)
        for s in ("running", "success", "failure", "partial", "timeout", "cancelled")
    }
    insert(api, list(runs.values()))
    assert ids(query(api, agent_name=agent, status=status)) == [runs[expected]["event_id"]]


@pytest.mark.parametrize("status", ["done", "FAILED", "Success"])
def test_unknown_status_filter_is_rejected(api: httpx.Client, status: str) -> None:
    response = api.get(RUNS, params={"status": status})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "status"]
    assert "Status must be one of" in error["msg"]


def test_filters_combine(api: httpx.Client) -> None:
    agent = unique_agent()
    target = new_run(agent_name=agent, job_type="j1", status="failure")
    insert(
        api,
        [
            target,
            new_run(agent_name=agent, job_type="j1", status="success"),
            new_run(agent_name=agent, job_type="j2", status="failure"),
        ],
    )
    assert ids(query(api, agent_name=agent, job_type="j1", status="failed")) == [target["event_id"]]


def test_filter_matching_nothing_answers_empty_list(api: httpx.Client) -> None:
    assert query(api, agent_name=unique_agent()) == []


# ----- time windows -----


@pytest.fixture
def timed_runs(api: httpx.Client) -> tuple[str, dict[str, dict[str, Any]]]:
    """Three runs of one agent created and started at 09:00Z, 10:00Z and 11:00Z."""
    agent = unique_agent()
    runs = {
        hour: new_run(
            agent_name=agent,
            created_at=f"2026-01-12T{hour}:00:00Z",
            start_time=f"2026-01-12T{hour}:00:00Z",
        )
        for hour in ("09", "10", "11")
    }
    insert(api, list(runs.values()))
    return agent, runs


def window(api: httpx.Client, agent: str, runs: dict[str, Any], **params: str) -> list[str]:
    """Hours of the runs the query returns, newest first."""
    by_id = {run["event_id"]: hour for hour, run in runs.items()}
    return [by_id[event_id] for event_id in ids(query(api, agent_name=agent, **params))]


@pytest.mark.parametrize(
    ("params", "hours"),
    [
        ({"created_after": "2026-01-12T10:00:00Z"}, ["11"]),
        ({"created_after": "2026-01-12T12:00:00+02:00"}, ["11"]),
        ({"created_after": "2026-01-12T09:59:59.999999Z"}, ["11", "10"]),
        ({"created_before": "2026-01-12T10:00:00Z"}, ["09"]),
        ({"created_before": "2026-01-12T05:00:00-05:00"}, ["09"]),
        ({"created_before": "2026-01-12T10:00:00.000001Z"}, ["10", "09"]),
        (
            {
                "created_after": "2026-01-12T11:00:00+02:00",
                "created_before": "2026-01-12T13:00:00+02:00",
            },
            ["10"],
        ),
    ],
)
def test_created_before_and_after_are_exclusive_instants(
    api: httpx.Client,
    timed_runs: tuple[str, dict[str, dict[str, Any]]],
    params: dict[str, str],
    hours: list[str],
) -> None:
    agent, runs = timed_runs
    assert window(api, agent, runs, **params) == hours


@pytest.mark.parametrize(
    ("params", "hours"),
    [
        ({"start_time_from": "2026-01-12T10:00:00Z"}, ["11", "10"]),
        ({"start_time_from": "2026-01-12T12:00:00+02:00"}, ["11", "10"]),
        ({"start_time_from": "2026-01-12T10:00:00.000001Z"}, ["11"]),
        ({"start_time_to": "2026-01-12T10:00:00Z"}, ["10", "09"]),
        ({"start_time_to": "2026-01-12T05:00:00-05:00"}, ["10", "09"]),
        ({"start_time_to": "2026-01-12T09:59:59Z"}, ["09"]),
        (
            {
                "start_time_from": "2026-01-12T12:00:00+02:00",
                "start_time_to": "2026-01-12T12:00:00+02:00",
            },
            ["10"],
        ),
    ],
)
def test_start_time_from_and_to_are_inclusive_instants(
    api: httpx.Client,
    timed_runs: tuple[str, dict[str, dict[str, Any]]],
    params: dict[str, str],
    hours: list[str],
) -> None:
    agent, runs = timed_runs
    assert window(api, agent, runs, **params) == hours


@pytest.mark.parametrize(
    "param", ["created_before", "created_after", "start_time_from", "start_time_to"]
)
@pytest.mark.parametrize(
    "value", ["yesterday", "2026-01-12T10:00:00", "2026-01-12 10:00", "2026-02-30T00:00:00Z", ""]
)
def test_unparsable_or_naive_timestamp_filter_is_rejected(
    api: httpx.Client, param: str, value: str
) -> None:
    response = api.get(RUNS, params={param: value})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", param]
    assert error["msg"]


def test_naive_timestamp_filter_error_names_the_missing_timezone(api: httpx.Client) -> None:
    response = api.get(RUNS, params={"created_after": "2026-01-12T10:00:00"})
    assert response.status_code == 422
    assert "timezone" in response.json()["detail"][0]["msg"]


# ----- one run -----


def test_get_one_run_returns_an_object_with_link_keys(api: httpx.Client) -> None:
    run = new_run(git_repo="https://github.com/org/repo", git_commit_hash="abc1234")
    insert(api, [run])
    response = api.get(f"{RUNS}/{run['event_id']}")
    assert response.status_code == 200
    got = response.json()
    assert isinstance(got, dict)
    assert got["event_id"] == run["event_id"]
    assert got["commit_url"] == "https://github.com/org/repo/commit/abc1234"
    assert got["repo_url"] == "https://github.com/org/repo"


def test_get_one_run_without_git_has_null_links(api: httpx.Client) -> None:
    run = new_run()
    insert(api, [run])
    got = api.get(f"{RUNS}/{run['event_id']}").json()
    assert got["commit_url"] is None
    assert got["repo_url"] is None


def test_listed_runs_carry_the_same_fields_as_get(api: httpx.Client) -> None:
    run = new_run(git_repo="git@github.com:org/repo.git", git_commit_hash="abc1234")
    insert(api, [run])
    [listed] = query(api, agent_name=run["agent_name"])
    assert listed == api.get(f"{RUNS}/{run['event_id']}").json()


def test_get_unknown_run_is_404(api: httpx.Client) -> None:
    event_id = f"missing-{uuid.uuid4()}"
    response = api.get(f"{RUNS}/{event_id}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"Run not found: {event_id}"}
