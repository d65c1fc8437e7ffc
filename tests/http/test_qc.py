"""QC reviews: POST/GET /api/v1/runs/{event_id}/qc and /api/agent-runs/{run_id}/qc."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from support import new_run

STORED_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
V1 = "/api/v1/runs/{}/qc"
RUNBOOK = "/api/agent-runs/{}/qc"
PATHS = pytest.mark.parametrize("path", [V1, RUNBOOK], ids=["v1", "runbook"])


def created_run(api: httpx.Client) -> str:
    """Create a run with a UUID event_id; return it."""
    run = new_run(event_id=str(uuid.uuid4()))
    assert api.post("/api/v1/runs", json=run).status_code == 201
    return str(run["event_id"])


def at(path: str, event_id: str) -> str:
    return path.format(quote(event_id, safe=""))


def listed(api: httpx.Client, path: str, event_id: str) -> list[dict[str, Any]]:
    response = api.get(at(path, event_id))
    assert response.status_code == 200, response.text
    reviews: list[dict[str, Any]] = response.json()
    return reviews


@PATHS
def test_a_review_is_stored_and_returned(api: httpx.Client, path: str) -> None:
    event_id = created_run(api)
    body = {"score": 4, "notes": "good answer ✓", "reviewer": "ana"}
    response = api.post(at(path, event_id), json=body)
    assert response.status_code == 201, response.text
    review = response.json()
    assert list(review) == ["id", "event_id", "score", "notes", "reviewer", "created_at"]
    assert isinstance(review["id"], int)
    assert (review["event_id"], review["score"]) == (event_id, 4)
    assert (review["notes"], review["reviewer"]) == ("good answer ✓", "ana")
    assert STORED_FORM.match(review["created_at"])
    assert listed(api, V1, event_id) == [review]
    assert listed(api, RUNBOOK, event_id) == [review]


@PATHS
def test_notes_and_reviewer_are_optional(api: httpx.Client, path: str) -> None:
    event_id = created_run(api)
    response = api.post(at(path, event_id), json={"score": 1})
    assert response.status_code == 201
    assert (response.json()["notes"], response.json()["reviewer"]) == (None, None)


def test_reviews_are_listed_oldest_first_from_both_paths(api: httpx.Client) -> None:
    event_id = created_run(api)
    for index, score in enumerate([5, 1, 3, 3]):
        path = V1 if index % 2 else RUNBOOK
        assert api.post(at(path, event_id), json={"score": score}).status_code == 201
    reviews = listed(api, V1, event_id)
    assert [r["score"] for r in reviews] == [5, 1, 3, 3]
    assert [r["id"] for r in reviews] == sorted(r["id"] for r in reviews)
    assert listed(api, RUNBOOK, event_id) == reviews


def test_a_run_without_reviews_lists_none(api: httpx.Client) -> None:
    assert listed(api, V1, created_run(api)) == []


@PATHS
@pytest.mark.parametrize(
    "body",
    [
        {"score": 0},
        {"score": 6},
        {"score": -1},
        {"score": 2.5},
        {"score": 3.0},
        {"score": "3"},
        {"score": True},
        {"score": None},
        {},
        {"notes": "no score"},
        {"score": 3, "notes": 5},
        {"score": 3, "notes": "a\x00b"},
        {"score": 3, "reviewer": "x" * 257},
        [{"score": 3}],
    ],
)
def test_invalid_reviews_are_rejected(api: httpx.Client, path: str, body: Any) -> None:
    event_id = created_run(api)
    response = api.post(at(path, event_id), json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert listed(api, V1, event_id) == []


@PATHS
def test_a_review_of_an_unknown_run_is_404(api: httpx.Client, path: str) -> None:
    missing = str(uuid.uuid4())
    response = api.post(at(path, missing), json={"score": 3})
    assert response.status_code == 404
    assert response.json() == {"detail": f"Run not found: {missing}"}
    assert api.get(at(path, missing)).status_code == 404


@PATHS
def test_an_invalid_review_of_an_unknown_run_is_422(api: httpx.Client, path: str) -> None:
    assert api.post(at(path, str(uuid.uuid4())), json={"score": 9}).status_code == 422


def test_reviews_of_an_agent_run_share_both_paths(api: httpx.Client) -> None:
    run_id = str(uuid.uuid4())
    body = {"run_id": run_id, "agent_name": "qc-agent", "qc": [{"score": 2}]}
    assert api.post("/api/agent-runs", json=body).status_code == 200
    assert api.post(at(RUNBOOK, run_id), json={"score": 5}).status_code == 201
    assert [r["score"] for r in listed(api, V1, run_id)] == [2, 5]


def test_a_non_json_review_is_refused(api: httpx.Client) -> None:
    event_id = created_run(api)
    response = api.post(
        at(V1, event_id), content=b"score=3", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415


def test_qc_endpoints_are_documented(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert {"post", "get"} <= set(schema["paths"]["/api/v1/runs/{event_id}/qc"])
    assert "QcCreate" in schema["components"]["schemas"]
