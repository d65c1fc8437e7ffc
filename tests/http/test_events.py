"""Run events: POST/GET /api/v1/runs/{event_id}/events through the real server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from support import new_run

STORED_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
KIB = 1024


def created_run(api: httpx.Client, **fields: Any) -> str:
    """Create a run; return its event_id."""
    run = new_run(**fields)
    assert api.post("/api/v1/runs", json=run).status_code == 201
    return str(run["event_id"])


def events_path(event_id: str) -> str:
    return f"/api/v1/runs/{quote(event_id, safe='')}/events"


def post_events(api: httpx.Client, event_id: str, body: Any) -> httpx.Response:
    return api.post(events_path(event_id), json=body)


def listed(api: httpx.Client, event_id: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(events_path(event_id), params=params)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


def messages(events: list[dict[str, Any]]) -> list[str]:
    return [event["message"] for event in events]


def assert_rejected(api: httpx.Client, event_id: str, body: Any) -> list[dict[str, Any]]:
    """POST answers 422 in the API's error shape and stores nothing; return the errors."""
    response = post_events(api, event_id, body)
    assert response.status_code == 422, response.text
    detail: list[dict[str, Any]] = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    assert all({"type", "loc", "msg"} <= set(error) for error in detail)
    assert listed(api, event_id) == []
    return detail


# ----- appending -----


def test_one_event_is_stored_with_defaults(api: httpx.Client) -> None:
    event_id = created_run(api)
    before = datetime.now(UTC)
    response = post_events(api, event_id, {"message": "fetched"})
    assert response.status_code == 201
    assert response.json() == {"event_id": event_id, "inserted": 1}
    [event] = listed(api, event_id)
    assert set(event) == {"id", "event_id", "timestamp", "level", "message", "data"}
    assert (event["event_id"], event["message"], event["level"]) == (event_id, "fetched", "info")
    assert event["data"] is None
    assert isinstance(event["id"], int)
    assert STORED_FORM.match(event["timestamp"])
    stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=5) <= stamp <= datetime.now(UTC) + timedelta(seconds=5)


def test_an_array_of_events_is_stored_in_order(api: httpx.Client) -> None:
    event_id = created_run(api)
    body = [
        {
            "message": "start",
            "level": "DEBUG",
            "timestamp": "2026-01-12T12:30:00+02:00",
            "data": {"rows": 42, "nested": {"list": [1, 2.5, None, "é✓"]}},
        },
        {"message": "warned", "level": "Warning"},
        {"message": "boom", "level": "critical", "data": {}},
    ]
    assert post_events(api, event_id, body).json() == {"event_id": event_id, "inserted": 3}
    assert post_events(api, event_id, {"message": "later", "level": "error"}).status_code == 201
    events = listed(api, event_id)
    assert messages(events) == ["start", "warned", "boom", "later"]
    assert [e["level"] for e in events] == ["debug", "warning", "critical", "error"]
    assert events[0]["timestamp"] == "2026-01-12T10:30:00.000000Z"
    assert events[0]["data"] == body[0]["data"]
    assert events[2]["data"] == {}
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4


def test_events_of_one_run_are_not_listed_for_another(api: httpx.Client) -> None:
    first, second = created_run(api), created_run(api)
    post_events(api, first, [{"message": "a1"}, {"message": "a2"}])
    post_events(api, second, {"message": "b1"})
    assert messages(listed(api, first)) == ["a1", "a2"]
    assert messages(listed(api, second)) == ["b1"]


def test_a_run_without_events_lists_an_empty_array(api: httpx.Client) -> None:
    assert listed(api, created_run(api)) == []


def test_an_empty_array_inserts_nothing(api: httpx.Client) -> None:
    event_id = created_run(api)
    assert post_events(api, event_id, []).json() == {"event_id": event_id, "inserted": 0}
    assert listed(api, event_id) == []


def test_unknown_fields_are_ignored_and_an_empty_message_is_kept(api: httpx.Client) -> None:
    event_id = created_run(api)
    assert post_events(api, event_id, {"message": "", "colour": "blue"}).status_code == 201
    [event] = listed(api, event_id)
    assert event["message"] == ""
    assert "colour" not in event


def test_unicode_event_id(api: httpx.Client) -> None:
    event_id = created_run(api, event_id=f"evt café ✓ 100% ?#& {new_run()['run_id']}")
    assert post_events(api, event_id, {"message": "ok"}).json()["event_id"] == event_id
    assert messages(listed(api, event_id)) == ["ok"]


def test_message_of_exactly_64_kib_is_accepted(api: httpx.Client) -> None:
    event_id = created_run(api)
    message = "é" * (32 * KIB)  # 2 bytes each in UTF-8
    assert post_events(api, event_id, {"message": message}).status_code == 201
    assert messages(listed(api, event_id)) == [message]


def test_one_thousand_events_fit_in_one_request(api: httpx.Client) -> None:
    event_id = created_run(api)
    body = [{"message": f"m{n}"} for n in range(1000)]
    assert post_events(api, event_id, body).json()["inserted"] == 1000
    assert len(listed(api, event_id)) == 1000


# ----- unknown runs -----


def test_events_for_an_unknown_run_are_404_and_not_stored(api: httpx.Client) -> None:
    event_id = new_run()["event_id"]
    response = post_events(api, event_id, [{"message": "lost"}])
    assert response.status_code == 404
    assert response.json() == {"detail": f"Run not found: {event_id}"}
    missing = api.get(events_path(event_id))
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"Run not found: {event_id}"}
    # The run created afterwards has no events from before it existed.
    created_run(api, event_id=event_id)
    assert listed(api, event_id) == []


def test_invalid_events_for_an_unknown_run_are_422(api: httpx.Client) -> None:
    response = post_events(api, new_run()["event_id"], {"level": "info"})
    assert response.status_code == 422


# ----- validation -----

BAD_EVENTS: list[tuple[str, Any, str]] = [
    ("missing message", {"level": "info"}, "message"),
    ("message null", {"message": None}, "message"),
    ("message a number", {"message": 5}, "message"),
    ("message over 64 KiB", {"message": "é" * (32 * KIB) + "x"}, "message"),
    ("message with NUL", {"message": "a\x00b"}, "message"),
    ("unknown level", {"message": "m", "level": "verbose"}, "level"),
    ("level null", {"message": "m", "level": None}, "level"),
    ("level a number", {"message": "m", "level": 20}, "level"),
    ("naive timestamp", {"message": "m", "timestamp": "2026-01-12T10:30:00"}, "timestamp"),
    ("unparsable timestamp", {"message": "m", "timestamp": "yesterday"}, "timestamp"),
    ("timestamp a number", {"message": "m", "timestamp": 1768213800}, "timestamp"),
    ("data a list", {"message": "m", "data": [1, 2]}, "data"),
    ("data a string", {"message": "m", "data": "x"}, "data"),
]


@pytest.mark.parametrize(
    ("body", "field"), [c[1:] for c in BAD_EVENTS], ids=[c[0] for c in BAD_EVENTS]
)
def test_a_bad_event_is_422_naming_its_field(api: httpx.Client, body: Any, field: str) -> None:
    event_id = created_run(api)
    detail = assert_rejected(api, event_id, body)
    assert [error["loc"] for error in detail] == [["body", field]]


@pytest.mark.parametrize(
    ("body", "field"), [c[1:] for c in BAD_EVENTS], ids=[c[0] for c in BAD_EVENTS]
)
def test_one_bad_item_rejects_the_whole_array_naming_its_index(
    api: httpx.Client, body: Any, field: str
) -> None:
    event_id = created_run(api)
    detail = assert_rejected(api, event_id, [{"message": "fine"}, {"message": "also"}, body])
    assert [error["loc"] for error in detail] == [["body", 2, field]]


def test_every_bad_item_is_named(api: httpx.Client) -> None:
    event_id = created_run(api)
    body = [{"message": "ok"}, {"level": "x"}, "not an object", {"message": "ok"}]
    detail = assert_rejected(api, event_id, body)
    assert [error["loc"] for error in detail] == [
        ["body", 1, "message"],
        ["body", 1, "level"],
        ["body", 2],
    ]


@pytest.mark.parametrize("body", ["text", 5, None, True])
def test_a_body_neither_object_nor_array_is_422(api: httpx.Client, body: Any) -> None:
    event_id = created_run(api)
    detail = assert_rejected(api, event_id, body)
    assert [error["loc"] for error in detail] == [["body"]]


def test_more_than_1000_events_is_422(api: httpx.Client) -> None:
    event_id = created_run(api)
    detail = assert_rejected(api, event_id, [{"message": "m"}] * 1001)
    assert detail[0]["type"] == "too_long"
    assert "1000" in detail[0]["msg"]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"message": "m"', "application/json", 422),
        (b"", "application/json", 422),
        (b'{"message": NaN}', "application/json", 422),
        (b'{"message": "m"}', "text/plain", 415),
    ],
    ids=["bad JSON", "empty body", "NaN", "text/plain"],
)
def test_unreadable_bodies(
    api: httpx.Client, content: bytes, content_type: str, status: int
) -> None:
    event_id = created_run(api)
    response = api.post(
        events_path(event_id), content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status, response.text
    assert "detail" in response.json()
    assert listed(api, event_id) == []


# ----- reading and paging -----


def test_paging_with_limit_and_after_id(api: httpx.Client) -> None:
    event_id = created_run(api)
    post_events(api, event_id, [{"message": f"m{n}"} for n in range(7)])
    first = listed(api, event_id, limit=3)
    assert messages(first) == ["m0", "m1", "m2"]
    second = listed(api, event_id, limit=3, after_id=first[-1]["id"])
    assert messages(second) == ["m3", "m4", "m5"]
    rest = listed(api, event_id, after_id=second[-1]["id"])
    assert messages(rest) == ["m6"]
    assert listed(api, event_id, after_id=rest[-1]["id"]) == []
    assert messages(listed(api, event_id, after_id=0)) == [f"m{n}" for n in range(7)]


def test_default_page_is_1000_events(api: httpx.Client) -> None:
    event_id = created_run(api)
    post_events(api, event_id, [{"message": f"a{n}"} for n in range(1000)])
    post_events(api, event_id, [{"message": f"b{n}"} for n in range(5)])
    page = listed(api, event_id)
    assert len(page) == 1000
    assert messages(listed(api, event_id, after_id=page[-1]["id"])) == [f"b{n}" for n in range(5)]
    assert len(listed(api, event_id, limit=10000)) == 1005


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "10001"},
        {"limit": "ten"},
        {"limit": ""},
        {"after_id": "-1"},
        {"after_id": "x"},
        {"after_id": str(2**63)},
    ],
    ids=str,
)
def test_bad_paging_parameters_are_422(api: httpx.Client, params: dict[str, str]) -> None:
    event_id = created_run(api)
    response = api.get(events_path(event_id), params=params)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", next(iter(params))]


def test_bad_paging_of_an_unknown_run_is_422(api: httpx.Client) -> None:
    response = api.get(events_path(new_run()["event_id"]), params={"limit": "0"})
    assert response.status_code == 422


def test_events_are_documented_in_openapi(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    path = spec["paths"]["/api/v1/runs/{event_id}/events"]
    body = path["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0] == {"$ref": "#/components/schemas/RunEventCreate"}
    assert body["oneOf"][1]["maxItems"] == 1000
    assert {p["name"] for p in path["get"]["parameters"]} >= {"event_id", "limit", "after_id"}
    schema = spec["components"]["schemas"]["RunEventCreate"]
    assert schema["required"] == ["message"]
    assert set(schema["properties"]) == {"message", "level", "timestamp", "data"}
