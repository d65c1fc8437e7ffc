"""Hostile and malformed input: always a 4xx, never a 5xx, and nothing stored.

The catalogue below sends raw bytes (not ``json=``) so that bodies no JSON library would
produce -- NaN literals, lone surrogates, 10,000-deep nesting -- reach the server as is.
``EID`` in a template is replaced by a fresh event_id; after the request, a GET of that
event_id must answer 404.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import orjson
import pytest

from local_telemetry.schemas import MAX_JSON_DEPTH
from support import ServerProcess, StartServer, new_run, query

JSON = "application/json"
MIB = 1024 * 1024

# The fields of a valid run, as JSON text without braces; templates add or override fields.
START = '"start_time": "2026-01-12T10:30:00Z"'
IDS = '"event_id": "EID", "run_id": "run-EID", "agent_name": "bad-input", "job_type": "fuzz"'
VALID = f"{IDS}, {START}"


def run_with(**fields: str) -> str:
    """A run object whose ``fields`` are raw JSON text (replacing the defaults)."""
    parts = {
        "event_id": '"EID"',
        "run_id": '"run-EID"',
        "agent_name": '"bad-input"',
        "job_type": '"fuzz"',
        "start_time": '"2026-01-12T10:30:00Z"',
    }
    parts.update(fields)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}"


def deep(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


# (case id, body template, content type, expected status)
CATALOGUE: list[tuple[str, bytes | str, str | None, int]] = [
    ("malformed-truncated", '{"event_id": "EID", "run_id": ', JSON, 422),
    ("malformed-trailing-garbage", "{" + VALID + "} trailing", JSON, 422),
    ("malformed-single-quotes", "{'event_id': 'EID'}", JSON, 422),
    ("malformed-trailing-comma", "{" + VALID + ",}", JSON, 422),
    ("malformed-unquoted-key", "{event_id: 1}", JSON, 422),
    ("malformed-two-objects", "{" + VALID + "}{" + VALID + "}", JSON, 422),
    ("malformed-comment", "{" + VALID + "} // comment", JSON, 422),
    ("malformed-utf8-bom", b"\xef\xbb\xbf{" + VALID.encode() + b"}", JSON, 422),
    ("empty-body", "", JSON, 422),
    ("whitespace-body", " \n\t ", JSON, 422),
    ("json-array", "[{" + VALID + "}]", JSON, 422),
    ("json-number", "42", JSON, 422),
    ("json-string", '"{' + VALID.replace('"', '\\"') + '}"', JSON, 422),
    ("json-null", "null", JSON, 422),
    ("json-true", "true", JSON, 422),
    ("nan-counter", run_with(items_discovered="NaN"), JSON, 422),
    ("infinity-counter", run_with(items_discovered="Infinity"), JSON, 422),
    ("minus-infinity-counter", run_with(duration_ms="-Infinity"), JSON, 422),
    ("nan-in-metrics", run_with(metrics_json='{"cost": NaN}'), JSON, 422),
    ("infinity-in-metrics", run_with(metrics_json='{"cost": Infinity}'), JSON, 422),
    ("minus-infinity-in-context", run_with(context_json='{"t": [-Infinity]}'), JSON, 422),
    ("1e400-counter", run_with(items_failed="1e400"), JSON, 422),
    ("1e400-in-metrics", run_with(metrics_json='{"big": 1e400}'), JSON, 422),
    ("2**64-counter", run_with(items_succeeded=str(2**64)), JSON, 422),
    ("2**63-counter", run_with(items_succeeded=str(2**63)), JSON, 422),
    ("negative-counter", run_with(items_skipped="-1"), JSON, 422),
    ("float-counter", run_with(items_skipped="1.5"), JSON, 422),
    ("string-counter", run_with(items_skipped='"5"'), JSON, 422),
    ("bool-counter", run_with(items_skipped="true"), JSON, 422),
    ("lone-surrogate-escape", run_with(agent_name='"\\ud800"'), JSON, 422),
    ("lone-low-surrogate-escape", run_with(agent_name='"x\\udc00y"'), JSON, 422),
    ("surrogate-utf8-bytes", run_with(agent_name='"SURR"').encode(), JSON, 422),
    ("invalid-utf8-bytes", run_with(agent_name='"\\xff"').encode(), JSON, 422),
    ("nul-escape-in-run-id", run_with(run_id='"run\\u0000EID"'), JSON, 422),
    ("nul-escape-in-event-id", run_with(event_id='"EID\\u0000"'), JSON, 422),
    ("raw-nul-byte-in-run-id", run_with(run_id='"run\x00EID"'), JSON, 422),
    ("raw-control-char", run_with(job_type='"fu\x01zz"'), JSON, 422),
    ("10000-deep-metrics", run_with(metrics_json=deep(10_000)), JSON, 422),
    ("1025-deep-metrics", run_with(metrics_json=deep(1024)), JSON, 422),
    ("300-deep-metrics", run_with(metrics_json=deep(300)), JSON, 422),
    ("metrics-is-array", run_with(metrics_json="[1, 2]"), JSON, 422),
    ("context-is-string", run_with(context_json='"{}"'), JSON, 422),
    ("text-plain", "{" + VALID + "}", "text/plain", 415),
    ("form-urlencoded", "event_id=EID&run_id=x", "application/x-www-form-urlencoded", 415),
    ("multipart", "{" + VALID + "}", "multipart/form-data; boundary=x", 415),
    ("xml", "<run event_id='EID'/>", "application/xml", 415),
    ("naive-start-time", run_with(start_time='"2026-01-12T10:30:00"'), JSON, 422),
    ("space-naive-start-time", run_with(start_time='"2026-01-12 10:30:00"'), JSON, 422),
    ("date-only-start-time", run_with(start_time='"2026-01-12"'), JSON, 422),
    ("year-10000-start-time", run_with(start_time='"10000-01-01T00:00:00Z"'), JSON, 422),
    ("garbage-start-time", run_with(start_time='"yesterday"'), JSON, 422),
    ("empty-start-time", run_with(start_time='""'), JSON, 422),
    ("epoch-number-start-time", run_with(start_time="1736676600"), JSON, 422),
    ("nul-suffixed-start-time", run_with(start_time='"2026-01-12T10:30:00Z\\u0000x"'), JSON, 422),
    ("feb-30-end-time", run_with(end_time='"2026-02-30T00:00:00Z"'), JSON, 422),
    ("naive-created-at", run_with(created_at='"2026-01-12T10:30:00"'), JSON, 422),
    ("status-unknown", run_with(status='"bogus"'), JSON, 422),
    ("status-wrong-case", run_with(status='"SUCCESS"'), JSON, 422),
    ("status-null", run_with(status="null"), JSON, 422),
    ("missing-start-time", "{" + IDS + "}", JSON, 422),
    ("duplicate-key-last-bad", "{" + VALID + ', "start_time": "garbage"}', JSON, 422),
    ("event-id-too-long", run_with(event_id='"EID' + "x" * 300 + '"'), JSON, 422),
    ("agent-name-empty", run_with(agent_name='""'), JSON, 422),
    ("agent-name-number", run_with(agent_name="7"), JSON, 422),
    ("commit-hash-not-hex", run_with(git_commit_hash='"not-a-hash"'), JSON, 422),
    ("commit-source-unknown", run_with(git_commit_source='"robot"'), JSON, 422),
    ("api-posted-not-bool", run_with(api_posted='"yes"'), JSON, 422),
]


def render(template: bytes | str, event_id: str) -> bytes:
    data = template if isinstance(template, bytes) else template.encode()
    data = data.replace(b"EID", event_id.encode())
    data = data.replace(b"SURR", b"\xed\xa0\x80")  # a UTF-16 surrogate encoded as UTF-8
    return data.replace(b"\\xff", b"\xff")  # a byte that is never valid UTF-8


@pytest.mark.parametrize(
    ("template", "content_type", "status"),
    [pytest.param(t, c, s, id=i) for i, t, c, s in CATALOGUE],
)
def test_bad_create_body_is_refused_and_nothing_is_stored(
    api: httpx.Client, template: bytes | str, content_type: str | None, status: int
) -> None:
    event_id = str(uuid.uuid4())
    headers = {"content-type": content_type} if content_type else {}
    response = api.post("/api/v1/runs", content=render(template, event_id), headers=headers)
    assert response.status_code == status, response.text[:300]
    assert "detail" in response.json()
    assert api.get(f"/api/v1/runs/{event_id}").status_code == 404
    assert api.get("/api/v1/runs", params={"run_id": f"run-{event_id}"}).json() == []


def test_catalogue_templates_are_valid_runs_once_the_fault_is_removed(api: httpx.Client) -> None:
    """Guards the catalogue itself: its base body really is accepted."""
    event_id = str(uuid.uuid4())
    body = render(run_with(agent_name='"bad-input-guard"'), event_id)
    response = api.post("/api/v1/runs", content=body)
    assert response.status_code == 201, response.text[:300]
    assert api.get(f"/api/v1/runs/{event_id}").json()["job_type"] == "fuzz"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.telemetry+json",
    ],
)
def test_json_content_types_are_accepted(api: httpx.Client, content_type: str) -> None:
    run = new_run()
    response = api.post(
        "/api/v1/runs", content=orjson.dumps(run), headers={"content-type": content_type}
    )
    assert response.status_code == 201, response.text[:300]


def test_json_fields_at_the_depth_limit_are_stored_intact(api: httpx.Client) -> None:
    value: dict[str, Any] = {"leaf": [1, 2.5, "x", None, True]}
    for _ in range(MAX_JSON_DEPTH - 2):  # the object and the leaf list are two levels
        value = {"a": value}
    run = new_run(metrics_json=value)
    assert api.post("/api/v1/runs", json=run).status_code == 201
    assert api.get(f"/api/v1/runs/{run['event_id']}").json()["metrics_json"] == value


def test_deeply_nested_json_in_a_patch_is_refused_and_the_run_kept(api: httpx.Client) -> None:
    run = new_run(metrics_json={"kept": 1})
    assert api.post("/api/v1/runs", json=run).status_code == 201
    body = ('{"status": "success", "metrics_json": ' + deep(300) + "}").encode()
    response = api.patch(f"/api/v1/runs/{run['event_id']}", content=body)
    assert response.status_code == 422, response.text[:300]
    stored = api.get(f"/api/v1/runs/{run['event_id']}").json()
    assert stored["metrics_json"] == {"kept": 1}
    assert stored["status"] == "running"


def test_deeply_nested_item_in_a_batch_is_an_item_error_not_a_failed_batch(
    api: httpx.Client,
) -> None:
    good, bad = new_run(), new_run()
    body = b"[" + orjson.dumps(good) + b"," + orjson.dumps(bad)[:-1]
    body += b', "metrics_json": ' + deep(300).encode() + b"}]"
    response = api.post("/api/v1/runs/batch", content=body)
    assert response.status_code == 200, response.text[:300]
    result = response.json()
    assert (result["inserted"], result["total"]) == (1, 2)
    assert [e["index"] for e in result["errors"]] == [1]
    assert api.get(f"/api/v1/runs/{good['event_id']}").status_code == 200
    assert api.get(f"/api/v1/runs/{bad['event_id']}").status_code == 404


# ----- body size -----


def big_run(chars: int) -> tuple[dict[str, Any], bytes]:
    """A run whose error_details holds ``chars`` characters, and its JSON encoding."""
    line = '  File "/srv/app/module.py", line {n}, in handler: ValueError("bad value é")\n'
    text = ("🤖✓\t" + "".join(line.format(n=n) for n in range(chars // 60 + 1)))[:chars]
    run = new_run(error_details=text)
    return run, orjson.dumps(run)


def test_body_over_1_mib_is_413_and_not_stored(api: httpx.Client) -> None:
    run, body = big_run(1_100_000)
    assert len(body) > MIB
    response = api.post("/api/v1/runs", content=body, headers={"content-type": JSON})
    assert response.status_code == 413, response.text[:300]
    assert "detail" in response.json()
    assert api.get(f"/api/v1/runs/{run['event_id']}").status_code == 404


def test_chunked_body_over_1_mib_is_413_without_a_content_length(api: httpx.Client) -> None:
    run, body = big_run(1_100_000)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = api.post("/api/v1/runs", content=chunks(), headers={"content-type": JSON})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413, response.text[:300]
    assert api.get(f"/api/v1/runs/{run['event_id']}").status_code == 404


def test_patch_body_over_1_mib_is_413_and_the_run_kept(api: httpx.Client) -> None:
    run = new_run()
    assert api.post("/api/v1/runs", json=run).status_code == 201
    body = orjson.dumps({"error_details": "x" * (MIB + 1)})
    response = api.patch(f"/api/v1/runs/{run['event_id']}", content=body)
    assert response.status_code == 413
    assert api.get(f"/api/v1/runs/{run['event_id']}").json()["error_details"] is None


def test_200_kb_error_details_are_accepted_and_read_back_intact(api: httpx.Client) -> None:
    run, body = big_run(200_000)  # under the 256 KiB limit of error_details
    assert len(body) < MIB
    response = api.post("/api/v1/runs", content=body, headers={"content-type": JSON})
    assert response.status_code == 201, response.text[:300]
    stored = api.get(f"/api/v1/runs/{run['event_id']}").json()
    assert len(stored["error_details"]) == 200_000
    assert stored["error_details"] == run["error_details"]


def test_200_kb_error_details_can_be_set_by_patch(api: httpx.Client) -> None:
    run = new_run()
    assert api.post("/api/v1/runs", json=run).status_code == 201
    text = big_run(200_000)[0]["error_details"]
    response = api.patch(f"/api/v1/runs/{run['event_id']}", json={"error_details": text})
    assert response.status_code == 200
    assert api.get(f"/api/v1/runs/{run['event_id']}").json()["error_details"] == text


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server accepting run bodies of at most 2048 bytes."""
    db_path = tmp_path_factory.mktemp("small-limit") / "telemetry.sqlite"
    server = ServerProcess(db_path, {"TELEMETRY_MAX_RUN_BODY_BYTES": "2048"}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def test_configured_body_limit_applies_to_create_patch_and_commit(
    small_limit_server: httpx.Client,
) -> None:
    client = small_limit_server
    small = new_run(error_details="y" * 1000)
    assert len(orjson.dumps(small)) < 2048
    assert client.post("/api/v1/runs", json=small).status_code == 201

    large = new_run(error_details="y" * 3000)
    assert 3000 < len(orjson.dumps(large)) < 4096
    assert client.post("/api/v1/runs", json=large).status_code == 413
    assert client.get(f"/api/v1/runs/{large['event_id']}").status_code == 404

    path = f"/api/v1/runs/{small['event_id']}"
    assert client.patch(path, json={"error_details": "z" * 3000}).status_code == 413
    commit = {"commit_hash": "abcdef1", "commit_source": "ci", "commit_author": "a" * 3000}
    assert client.post(f"{path}/associate-commit", json=commit).status_code == 413
    stored = client.get(path).json()
    assert stored["error_details"] == "y" * 1000
    assert stored["git_commit_hash"] is None


def test_batch_bodies_have_their_own_larger_limit(small_limit_server: httpx.Client) -> None:
    runs = [new_run(error_details="y" * 1000) for _ in range(3)]
    assert len(orjson.dumps(runs)) > 2048
    response = small_limit_server.post("/api/v1/runs/batch", json=runs)
    assert response.status_code == 200
    assert response.json()["inserted"] == 3


def test_event_bodies_have_the_batch_limit(small_limit_server: httpx.Client) -> None:
    run = new_run()
    assert small_limit_server.post("/api/v1/runs", json=run).status_code == 201
    events = [{"message": "y" * 1000} for _ in range(3)]
    assert len(orjson.dumps(events)) > 2048
    response = small_limit_server.post(f"/api/v1/runs/{run['event_id']}/events", json=events)
    assert response.status_code == 201
    assert response.json()["inserted"] == 3


# ----- query strings and paths -----


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("limit=%00", "limit"),
        ("offset=-5", "offset"),
        ("offset=99999999999999999999999", "offset"),
        ("created_after=notadate", "created_after"),
        ("created_before=2026-01-12", "created_before"),
        ("created_before=2026-01-12T10:30:00", "created_before"),
        ("start_time_to=10000-01-01T00:00:00Z", "start_time_to"),
        ("status=bogus", "status"),
        ("status=SUCCESS", "status"),
        ("start_time_from=2026-01-12T10:30:00Z%00", "start_time_from"),
        ("start_time_from=%002026-01-12T10:30:00Z", "start_time_from"),
        ("agent_name=a%00b", "agent_name"),
        ("job_type=%00", "job_type"),
    ],
)
def test_query_string_garbage_is_422_naming_the_parameter(
    api: httpx.Client, query: str, field: str
) -> None:
    response = api.get(f"/api/v1/runs?{query}")
    assert response.status_code == 422, response.text[:300]
    assert ["query", field] in [error["loc"] for error in response.json()["detail"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/runs/..%2F..%2Fetc"),
        ("GET", "/api/v1/runs/..%2F..%2Fetc%2Fpasswd"),
        ("GET", "/api/v1/runs/%2e%2e/%2e%2e/etc/passwd"),
        ("GET", "/api/v1/runs/%00"),
        ("GET", "/api/v1/runs/a%00b"),
        ("GET", "/api/v1/runs/%00/commit-url"),
        ("GET", "/api/v1/runs/%00/repo-url"),
        ("GET", "/api/v1/runs/%ff"),
        ("GET", "/api/v1/runs/%c0%ae%c0%ae"),
        ("GET", "/api/v1/runs/" + "a" * 5000),
        ("PATCH", "/api/v1/runs/%00"),
        ("PATCH", "/api/v1/runs/..%2F..%2Fetc"),
        ("POST", "/api/v1/runs/%00/associate-commit"),
        ("GET", "/api/v1/runs/%00/events"),
        ("POST", "/api/v1/runs/%00/events"),
        ("POST", "/api/v1/runs/..%2F..%2Fetc/events"),
    ],
)
def test_hostile_paths_are_404_never_500(api: httpx.Client, method: str, path: str) -> None:
    body = {"status": "success"} if method == "PATCH" else None
    if path.endswith("associate-commit"):
        body = {"commit_hash": "abcdef1", "commit_source": "ci"}
    if path.endswith("events") and method == "POST":
        body = {"message": "m"}
    response = api.request(method, path, json=body)
    assert response.status_code == 404, response.text[:300]
    assert "detail" in response.json()


def test_a_run_with_an_unparsable_git_repo_does_not_break_reads(
    start_server: StartServer,
) -> None:
    # A dedicated server: if this regressed, every listing of the shared one would fail.
    server: ServerProcess = start_server()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run = new_run(git_repo="https://[::1/org/repo", git_commit_hash="abcdef1")
        assert client.post("/api/v1/runs", json=run).status_code == 201
        path = f"/api/v1/runs/{run['event_id']}"
        stored = client.get(path).json()
        assert stored["git_repo"] == "https://[::1/org/repo"
        assert (stored["repo_url"], stored["commit_url"]) == (None, None)
        assert client.get(f"{path}/commit-url").json() == {"commit_url": None}
        assert client.get(f"{path}/repo-url").json() == {"repo_url": None}
        listed = client.get("/api/v1/runs")
        assert listed.status_code == 200
        assert [r["event_id"] for r in listed.json()] == [run["event_id"]]


# ----- afterwards -----


@pytest.mark.sqlite_only  # SQLite's own integrity and foreign-key checks of the file
def test_database_is_intact_after_the_catalogue(
    api: httpx.Client, shared_server: ServerProcess
) -> None:
    assert api.get("/health").status_code == 200  # the server is still up
    with closing(sqlite3.connect(f"file:{shared_server.db_path}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_nothing_of_the_catalogue_is_stored(
    api: httpx.Client, shared_server: ServerProcess
) -> None:
    assert api.get("/health").status_code == 200  # the server is still up
    sql = "SELECT count(*) FROM agent_runs WHERE agent_name = 'bad-input'"
    assert query(shared_server, sql) == [(0,)]  # no catalogue entry slipped through
