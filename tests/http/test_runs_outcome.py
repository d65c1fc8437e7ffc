"""Agent outcome fields (agent-metrics runbook) on create, batch, PATCH and every read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import new_run

OUTCOME: dict[str, Any] = {
    "resolution": "escalated",
    "input_kind": "email ✓",
    "self_corrected": True,
    "tokens_input": 1500,
    "tokens_output": 2**63 - 1,
    "cost_usd": 0.05,
    "sla_target_seconds": 300,
}
NULLS = dict.fromkeys(OUTCOME)

# (field, bad value): each alone makes a create, a batch item or a PATCH a 422.
BAD_VALUES: list[tuple[str, Any]] = [
    ("resolution", "done"),
    ("resolution", "Resolved"),
    ("resolution", ""),
    ("resolution", 1),
    ("resolution", True),
    ("input_kind", "x" * 257),
    ("input_kind", 5),
    ("input_kind", "a\x00b"),
    ("self_corrected", 1),
    ("self_corrected", 0),
    ("self_corrected", "true"),
    ("self_corrected", "yes"),
    ("tokens_input", -1),
    ("tokens_input", 1.5),
    ("tokens_input", 10.0),
    ("tokens_input", "10"),
    ("tokens_input", True),
    ("tokens_input", 2**63),
    ("tokens_output", -1),
    ("tokens_output", 2.5),
    ("tokens_output", "7"),
    ("tokens_output", False),
    ("cost_usd", -0.01),
    ("cost_usd", -1),
    ("cost_usd", "0.05"),
    ("cost_usd", True),
    ("cost_usd", [0.05]),
    ("cost_usd", {"usd": 1}),
    ("sla_target_seconds", 0),
    ("sla_target_seconds", -60),
    ("sla_target_seconds", 1.5),
    ("sla_target_seconds", 60.0),
    ("sla_target_seconds", "60"),
    ("sla_target_seconds", True),
    ("sla_target_seconds", 2**63),
]
BAD_IDS = [f"{field}={value!r}"[:60] for field, value in BAD_VALUES]


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    run = new_run(**fields)
    response = api.post("/api/v1/runs", json=run)
    assert response.status_code == 201, response.text
    return run


def fetch(api: httpx.Client, event_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/runs/{event_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def outcome_of(run: dict[str, Any]) -> dict[str, Any]:
    return {key: run[key] for key in OUTCOME}


# ----- round trips -----


def test_outcome_fields_are_null_by_default(api: httpx.Client) -> None:
    run = fetch(api, create(api)["event_id"])
    assert outcome_of(run) == NULLS
    assert run["api_posted"] is False  # a NOT NULL boolean keeps its false default


def test_run_objects_end_with_the_outcome_fields_then_links(api: httpx.Client) -> None:
    run = fetch(api, create(api)["event_id"])
    assert list(run)[-9:] == [*OUTCOME, "commit_url", "repo_url"]


def test_create_stores_every_outcome_field(api: httpx.Client) -> None:
    run = create(api, **OUTCOME)
    assert outcome_of(fetch(api, run["event_id"])) == OUTCOME
    [listed] = api.get("/api/v1/runs", params={"agent_name": run["agent_name"]}).json()
    assert outcome_of(listed) == OUTCOME


@pytest.mark.parametrize(
    ("sent", "returned"),
    [
        (0.05, "0.05"),
        (1.0, "1.0"),
        (3, "3.0"),
        (0, "0.0"),
        (-0.0, "0.0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1 / 3, "0.3333333333333333"),
        (0.00001, None),
        (10**20, None),
    ],
    ids=str,
)
def test_cost_is_a_float_returned_exactly(
    api: httpx.Client, sent: float, returned: str | None
) -> None:
    run = create(api, cost_usd=sent)
    response = api.get(f"/api/v1/runs/{run['event_id']}")
    cost = response.json()["cost_usd"]
    assert isinstance(cost, float)
    assert cost == float(sent)
    if returned is not None:
        assert f'"cost_usd":{returned},' in response.text


def test_self_corrected_false_is_not_null(api: httpx.Client) -> None:
    run = create(api, self_corrected=False)
    assert fetch(api, run["event_id"])["self_corrected"] is False


def test_explicit_nulls_on_create_are_null(api: httpx.Client) -> None:
    run = create(api, **NULLS)
    assert outcome_of(fetch(api, run["event_id"])) == NULLS


def test_input_kind_of_256_characters_is_accepted(api: httpx.Client) -> None:
    run = create(api, input_kind="k" * 256)
    assert fetch(api, run["event_id"])["input_kind"] == "k" * 256


@pytest.mark.parametrize("resolution", ["resolved", "escalated", "failed"])
def test_every_resolution_is_accepted(api: httpx.Client, resolution: str) -> None:
    run = create(api, resolution=resolution)
    assert fetch(api, run["event_id"])["resolution"] == resolution


def test_batch_items_carry_outcome_fields(api: httpx.Client) -> None:
    good = new_run(**OUTCOME)
    plain = new_run()
    bad = new_run(resolution="unknown")
    response = api.post("/api/v1/runs/batch", json=[good, bad, plain])
    assert response.status_code == 200
    result = response.json()
    assert result["inserted"] == 2
    [error] = result["errors"]
    assert (error["index"], error["event_id"]) == (1, bad["event_id"])
    assert error["detail"].startswith("resolution:")
    assert outcome_of(fetch(api, good["event_id"])) == OUTCOME
    assert outcome_of(fetch(api, plain["event_id"])) == NULLS
    assert api.get(f"/api/v1/runs/{bad['event_id']}").status_code == 404


def test_patch_sets_outcome_fields(api: httpx.Client) -> None:
    run = create(api)
    response = api.patch(f"/api/v1/runs/{run['event_id']}", json=OUTCOME)
    assert response.status_code == 200, response.text
    assert response.json()["fields_updated"] == list(OUTCOME)
    stored = fetch(api, run["event_id"])
    assert outcome_of(stored) == OUTCOME
    change = {"self_corrected": False, "cost_usd": 2, "resolution": "resolved"}
    assert api.patch(f"/api/v1/runs/{run['event_id']}", json=change).status_code == 200
    stored = fetch(api, run["event_id"])
    assert outcome_of(stored) == {**OUTCOME, **change, "cost_usd": 2.0}


@pytest.mark.parametrize("field", list(OUTCOME))
def test_patch_null_clears_an_outcome_field(api: httpx.Client, field: str) -> None:
    run = create(api, **OUTCOME)
    response = api.patch(f"/api/v1/runs/{run['event_id']}", json={field: None})
    assert response.status_code == 200, response.text
    assert response.json()["fields_updated"] == [field]
    assert outcome_of(fetch(api, run["event_id"])) == {**OUTCOME, field: None}


# ----- bad values -----


@pytest.mark.parametrize(("field", "value"), BAD_VALUES, ids=BAD_IDS)
def test_create_rejects_a_bad_outcome_value(api: httpx.Client, field: str, value: Any) -> None:
    run = new_run(**{field: value})
    response = api.post("/api/v1/runs", json=run)
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    assert api.get(f"/api/v1/runs/{run['event_id']}").status_code == 404


@pytest.mark.parametrize(("field", "value"), BAD_VALUES, ids=BAD_IDS)
def test_batch_reports_a_bad_outcome_value(api: httpx.Client, field: str, value: Any) -> None:
    bad = new_run(**{field: value})
    response = api.post("/api/v1/runs/batch", json=[new_run(), bad])
    assert response.status_code == 200
    result = response.json()
    assert result["inserted"] == 1
    [error] = result["errors"]
    assert error["index"] == 1
    assert error["detail"].startswith(f"{field}:")
    assert api.get(f"/api/v1/runs/{bad['event_id']}").status_code == 404


@pytest.mark.parametrize(("field", "value"), BAD_VALUES, ids=BAD_IDS)
def test_patch_rejects_a_bad_outcome_value(api: httpx.Client, field: str, value: Any) -> None:
    run = create(api, **OUTCOME)
    before = fetch(api, run["event_id"])
    response = api.patch(f"/api/v1/runs/{run['event_id']}", json={field: value})
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    assert fetch(api, run["event_id"]) == before


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b"Infinity", b"-Infinity", b"1e400"],
    ids=["NaN", "Infinity", "-Infinity", "overflow"],
)
def test_cost_must_be_finite(api: httpx.Client, raw: bytes) -> None:
    run = new_run()
    body = httpx.Request("POST", "/", json=run).content[:-1] + b', "cost_usd": ' + raw + b"}"
    response = api.post("/api/v1/runs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert api.get(f"/api/v1/runs/{run['event_id']}").status_code == 404
