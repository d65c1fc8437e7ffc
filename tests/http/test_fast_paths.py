"""The fast paths answer exactly as the FastAPI routes: same responses, rows and errors.

Two real servers on fresh databases, one with the fast paths (``api/fastpath.py``) and
one with ``TELEMETRY_FAST_PATHS=false`` (plain FastAPI routing), are sent the same
scripted scenario, one request per line of ``SCENARIO``. For every request both must
answer the same status, the same headers (``date``/``server`` aside; a redirect's
``location`` without the server's own address) and the same body bytes; the only part of a
body masked is a non-null ``updated_at`` and a QC review's ``created_at``, the
server-chosen times in the scenario (every run sets its ``created_at``, every event its
``timestamp``). Each line also names
the status expected, and each listing the event_ids expected, so that no comparison
passes by both sides failing alike.

Reads are serialized by SQLite (``json_object``); each ``GET`` of runs must also equal,
byte for byte, what the dict reads served before: ``orjson.dumps`` of the stored row
decoded by ``decode_row``, links added. Afterwards the stored rows of the two databases
must be identical.

A second pair runs with auth and rate limiting (401/429 and their headers must not depend
on the dispatcher), and a third with a one-slot write queue (503 ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import httpx
import orjson
import pytest

from local_telemetry import gitlinks
from local_telemetry.api.app import create_app
from local_telemetry.api.runs import COLLECTION_HANDLERS
from local_telemetry.config import load_settings, parse_git_hosts
from local_telemetry.storage.base import RUN_COLUMNS
from local_telemetry.storage.sqlite import decode_row
from support import ServerProcess, StartServer, query, table_columns

RUNS = "/api/v1/runs"
BATCH = f"{RUNS}/batch"
MAX_RUN_BODY = 2048
MAX_BATCH_BODY = 8192
MAX_BATCH_ITEMS = 8
GIT_HOSTS = "git.corp.example=gitlab"
TOKEN = "fast-path-token"

SETTINGS = {
    "TELEMETRY_MAX_RUN_BODY_BYTES": str(MAX_RUN_BODY),
    "TELEMETRY_MAX_BATCH_BODY_BYTES": str(MAX_BATCH_BODY),
    "TELEMETRY_MAX_BATCH_ITEMS": str(MAX_BATCH_ITEMS),
    "TELEMETRY_GIT_HOSTS": GIT_HOSTS,
}
GUARDED = {
    "TELEMETRY_API_AUTH_ENABLED": "true",
    "TELEMETRY_API_AUTH_TOKEN": TOKEN,
    "TELEMETRY_RATE_LIMIT_ENABLED": "true",
    "TELEMETRY_RATE_LIMIT_RPM": "3",
}
FAST = {"TELEMETRY_FAST_PATHS": "true"}  # the default, set in case the environment has it
SLOW = {"TELEMETRY_FAST_PATHS": "false"}

UNSTABLE_HEADERS = frozenset({"date", "server"})
SERVER_TIME = re.compile(rb'"updated_at":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z"')
# A QC review's created_at (the key after reviewer) is server time as well.
QC_TIME = re.compile(rb'("reviewer":(?:null|"[^"]*"),"created_at":)"[^"]*"')
NO_BODY = object()
JSON_TYPE = "application/json"


# ----- the scenario -----


@dataclass(frozen=True)
class Case:
    """One request of the scenario and what both servers must answer."""

    name: str
    method: str
    path: str  # as sent: already percent-encoded
    status: int  # what the FastAPI routes answer (and so the fast paths must)
    body: Any = NO_BODY  # bytes are sent as they are, anything else as JSON
    headers: tuple[tuple[str, str], ...] | None = None  # None: JSON content type if a body
    chunked: bool = False  # send the body in two chunks, without a Content-Length
    ids: tuple[str, ...] | None = None  # a listing's event_ids, in order


def run(event_id: str, minute: int, **fields: Any) -> dict[str, Any]:
    """A valid create body; ``created_at`` is set so that nothing depends on the clock."""
    body: dict[str, Any] = {
        "event_id": event_id,
        "run_id": f"run-{event_id}",
        "agent_name": "fp-alpha",
        "job_type": "fp-build",
        "start_time": "2026-01-12T09:00:00Z",
        "created_at": f"2026-01-12T10:{minute:02d}:00Z",
    }
    body.update(fields)
    return body


def at(event_id: str, suffix: str = "") -> str:
    """The path of one run (or of its ``suffix`` endpoint), event_id percent-encoded."""
    return f"{RUNS}/{quote(event_id, safe='')}" + (f"/{suffix}" if suffix else "")


def q(**params: str) -> str:
    """A listing with these query parameters."""
    return f"{RUNS}?{urlencode(params)}"


def ctype(value: str) -> tuple[tuple[str, str], ...]:
    return (("content-type", value),)


UNICODE_ID = "fp café ✓ 100% ?#&=+ 😀"
METRICS = {
    "tokens": 1234,
    "ratio": 0.1,
    "tiny": 1e-7,
    "huge": 1.5e300,
    "negative_zero": -0.0,
    "whole": 100.0,
    "i64_max": 2**63 - 1,  # the widest integer: anything outside signed 64 bits is a 422
    "i64_min": -(2**63),
    "nested": {"list": [1, [2, [3, {"deep": None}]]], "empty": {}, "none": []},
    "clé ✓": "valeur 😀",
}
CONTEXT = {
    "text": 'é✓ "quoted" \\ back / slash \n\t\x01\x1f \u2028\u2029 😀',
    "flags": [True, False, None],
}

A = run("fp-a", 0)
B = run(
    "fp-b",
    1,
    job_type="fp-deploy",
    status="partial",
    start_time="2026-01-12T08:00:00+01:00",
    end_time="2026-01-12T08:05:00.123456+01:00",
    product="Produit é ✓ 😀",
    product_family="content",
    platform="web",
    subdomain="blog",
    website="example.com",
    website_section="posts",
    item_name="how-to",
    agent_owner="team-a",
    items_discovered=100,
    items_succeeded=85,
    items_failed=10,
    items_skipped=5,
    duration_ms=2**63 - 1,
    input_summary="in",
    output_summary="out",
    source_ref="src",
    target_ref="dst",
    error_summary="15 failed",
    error_details='line1\nline2\u2028 \x01\x7f tab\t "q" \\',
    git_repo="git@github.com:org/repo.git",
    git_branch="main",
    git_commit_hash="ABCDEF1234567",
    git_run_tag="v1.2.3",
    git_commit_source="llm",
    git_commit_author="Zoë",
    git_commit_timestamp="2026-01-12T10:00:00-05:00",
    host="build-01",
    environment="production",
    trigger_type="cron",
    metrics_json=METRICS,
    context_json=CONTEXT,
    insight_id="insight-1",
    parent_run_id="run-fp-a",
    api_posted=True,
    api_posted_at="2026-01-12T10:01:30.5+00:00",
    api_retry_count=2,
    resolution="escalated",
    input_kind="chat ✓",
    self_corrected=False,
    tokens_input=1500,
    tokens_output=2**63 - 1,
    cost_usd=0.1 + 0.2,  # SQLite's own JSON would write 0.3
    sla_target_seconds=300,
    not_a_field="ignored on create",
)
C = run("fp-c", 2, agent_name="fp-beta", status="failed", start_time="2026-01-12T11:00:00Z")
D = run(UNICODE_ID, 3, agent_name="fp-ünï ✓", start_time="2026-01-12T12:00:00Z")
G = run(
    "fp-gitlab",
    4,
    git_repo="https://git.corp.example/team/proj.git",
    git_commit_hash="0123456789abcdef0123456789abcdef01234567",
)
U = run("fp-unparsable-repo", 5, git_repo="https://[::1/org/repo", git_commit_hash="abcdef1")
N = run("fp-unknown-host", 6, git_repo="https://example.org/x/y", git_commit_hash="abcdef1")
H = run("fp-charset", 7)
P = run("fp-plus-json", 8)
K = run("fp-chunked", 9)
Q = run("fp-no-content-type", 10)
E = run("fp-e", 11, job_type="fp-deploy")
F = run("fp-f", 12, agent_name="fp-beta")

STORED = (A, B, C, D, G, U, N, H, P, K, Q, E, F)
ALL = tuple(r["event_id"] for r in sorted(STORED, key=lambda r: r["created_at"], reverse=True))
ALPHA = tuple(i for i in ALL if i not in {"fp-c", "fp-f", UNICODE_ID})

OVERSIZED = b'{"pad": "' + b"x" * MAX_RUN_BODY + b'"}'
BATCH_MIXED = [
    E,
    {"event_id": "fp-batch-missing", "run_id": "x"},
    run("fp-batch-naive", 30, start_time="2026-01-12T10:30:00"),
    F,
    {**A, "agent_name": "fp-changed"},  # duplicate of a stored run
    {**E, "items_failed": 3},  # duplicate within the batch: the first wins
    "not an object",
    {**run("fp-batch-nul", 31, agent_name="a\x00b"), "event_id": 5},
]
COMMIT = {"commit_hash": "ABCDEF1234567", "commit_source": "ci"}
COMMIT_FULL = {**COMMIT, "commit_author": "Zoë", "commit_timestamp": "2026-01-12T11:00:00+02:00"}
COMMIT_EXTRA = {"commit_hash": "1234567", "commit_source": "manual", "extra": 1}
NAIVE = "2026-01-12T10:30:00"
PATCH_OK = {
    "items_failed": 2,
    "status": "success",
    "end_time": "2026-01-12T10:35:00+00:00",
    "duration_ms": 300000,
    "metrics_json": {"m": [1.5]},
    "items_succeeded": 98,
}
PATCH_CLEAR = {"error_summary": None, "end_time": None, "context_json": None, "input_kind": None}
PATCH_OUTCOME = {
    "cost_usd": 1e-5,
    "self_corrected": True,
    "resolution": "resolved",
    "tokens_input": 7,
}
PATCH_UNICODE = {"status": "cancelled", "output_summary": "fini ✓", "context_json": {"k": "v"}}
PATCH_NULLS = {"items_failed": None, "status": None, "api_posted": None}
SUCCESS = {"status": "success"}
EV = "events"
EVENT_TIME = "2026-01-12T10:00:00+01:00"  # every event sets it: nothing depends on the clock
EVENT_ONE = {"message": "one", "timestamp": EVENT_TIME}
EVENTS = [
    {"message": "two ✓", "level": "WARNING", "timestamp": EVENT_TIME, "data": {"rows": 4.5}},
    {"message": "three", "level": "error", "timestamp": EVENT_TIME, "data": METRICS["nested"]},
]
TEXT = ctype("text/plain")
CHARSET = ctype("application/json; charset=utf-8")
PLUS_JSON = ctype("application/vnd.api+json")
FORM = ctype("application/x-www-form-urlencoded")
TEXT_THEN_JSON = (("content-type", "text/plain"), ("content-type", JSON_TYPE))
JSON_THEN_TEXT = (("content-type", JSON_TYPE), ("content-type", "text/plain"))
AC = "associate-commit"
BETA = ("fp-f", "fp-c")
LATE_START = (UNICODE_ID, "fp-c")


def bad(**fields: Any) -> dict[str, Any]:
    """A create body that is valid but for ``fields``."""
    return run("fp-x", 20, **fields)


def post(name: str, path: str, status: int, body: Any, headers: Any = None) -> Case:
    return Case(name, "POST", path, status, body, headers)


def patch(name: str, event_id: str, status: int, body: Any, headers: Any = None) -> Case:
    return Case(name, "PATCH", at(event_id), status, body, headers)


def commit(name: str, event_id: str, status: int, body: Any, headers: Any = None) -> Case:
    return Case(name, "POST", at(event_id, AC), status, body, headers)


def get(name: str, path: str, status: int = 200, ids: tuple[str, ...] | None = None) -> Case:
    return Case(name, "GET", path, status, ids=ids)


def events(name: str, event_id: str, status: int, body: Any, headers: Any = None) -> Case:
    return Case(name, "POST", at(event_id, EV), status, body, headers)


def review(name: str, event_id: str, status: int, body: Any, headers: Any = None) -> Case:
    return Case(name, "POST", at(event_id, "qc"), status, body, headers)


# fmt: off
SCENARIO: tuple[Case, ...] = (
    # --- create ---
    post("create: created", RUNS, 201, A),
    post("create: every optional field", RUNS, 201, B),
    post("create: status alias normalized", RUNS, 201, C),
    post("create: unicode event_id", RUNS, 201, D),
    post("create: self-hosted git host", RUNS, 201, G),
    post("create: unparsable git repo", RUNS, 201, U),
    post("create: unknown git host", RUNS, 201, N),
    post("create: charset content type", RUNS, 201, H, CHARSET),
    post("create: +json content type", RUNS, 201, P, PLUS_JSON),
    Case("create: chunked body", "POST", RUNS, 201, K, chunked=True),
    post("create: no content type", RUNS, 201, json.dumps(Q).encode(), ()),
    post("create: duplicate", RUNS, 201, {**A, "agent_name": "fp-changed", "items_failed": 9}),
    post("create: duplicate, minimal body", RUNS, 201, run("fp-b", 59)),
    post("create: missing fields", RUNS, 422, {"event_id": "fp-x"}),
    post("create: naive start_time", RUNS, 422, bad(start_time=NAIVE)),
    post("create: naive created_at", RUNS, 422, bad(created_at=NAIVE)),
    post("create: not a timestamp", RUNS, 422, bad(end_time="yesterday")),
    post("create: unknown status", RUNS, 422, bad(status="done")),
    post("create: negative counter", RUNS, 422, bad(items_failed=-1)),
    post("create: string counter", RUNS, 422, bad(items_failed="3")),
    post("create: float counter", RUNS, 422, bad(duration_ms=1.5)),
    post("create: bool counter", RUNS, 422, bad(items_skipped=True)),
    post("create: counter over int64", RUNS, 422, bad(items_discovered=2**63)),
    post("create: api_posted not a bool", RUNS, 422, bad(api_posted=1)),
    post("create: NUL in a field", RUNS, 422, bad(agent_name="a\x00b")),
    post("create: NUL in event_id", RUNS, 422, run("fp-\x00", 20)),
    post("create: '/' in event_id", RUNS, 422, run("fp/x", 20)),
    post("create: empty event_id", RUNS, 422, run("", 20)),
    post("create: bad commit hash", RUNS, 422, bad(git_commit_hash="xyz")),
    post("create: metrics_json not an object", RUNS, 422, bad(metrics_json=[1])),
    post("create: unknown resolution", RUNS, 422, bad(resolution="done")),
    post("create: cost as a string", RUNS, 422, bad(cost_usd="0.05")),
    post("create: self_corrected not a bool", RUNS, 422, bad(self_corrected=1)),
    post("create: many errors", RUNS, 422, {"event_id": 1, "status": "x", "items_failed": -1}),
    post("create: body not an object", RUNS, 422, [A]),
    post("create: bad JSON", RUNS, 422, b'{"event_id": '),
    post("create: trailing garbage", RUNS, 422, b'{"event_id": "fp-x"} x'),
    post("create: NaN", RUNS, 422, b'{"items_failed": NaN}'),
    post("create: lone surrogate", RUNS, 422, b'{"agent_name": "\\ud800"}'),
    post("create: invalid UTF-8", RUNS, 422, b'{"agent_name": "\xff"}'),
    post("create: empty body", RUNS, 422, b""),
    post("create: blank body", RUNS, 422, b" \n\t "),
    post("create: text/plain", RUNS, 415, A, TEXT),
    post("create: form content type", RUNS, 415, b"a=b", FORM),
    post("create: oversized", RUNS, 413, OVERSIZED),
    Case("create: oversized, chunked", "POST", RUNS, 413, OVERSIZED, chunked=True),
    post("create: oversized, wrong type", RUNS, 415, OVERSIZED, TEXT),
    post("create: two Content-Types, JSON last", RUNS, 415, {"event_id": "x"}, TEXT_THEN_JSON),
    post("create: two Content-Types, JSON first", RUNS, 422, {"event_id": "x"}, JSON_THEN_TEXT),
    # --- batch ---
    post("batch: mixed valid, invalid and duplicate", BATCH, 200, BATCH_MIXED),
    post("batch: resent", BATCH, 200, [E, F]),
    post("batch: empty array", BATCH, 200, []),
    post("batch: only invalid items", BATCH, 200, [{"event_id": "fp-x"}, None, 3]),
    post("batch: not an array", BATCH, 422, {"runs": [E]}),
    post("batch: too many items", BATCH, 422, [{}] * (MAX_BATCH_ITEMS + 1)),
    post("batch: bad JSON", BATCH, 422, b"[{]"),
    post("batch: empty body", BATCH, 422, b""),
    post("batch: text/plain", BATCH, 415, [E], TEXT),
    post("batch: oversized", BATCH, 413, b"[" + b" " * MAX_BATCH_BODY + b"]"),
    # --- PATCH ---
    patch("patch: fields_updated in the order sent", "fp-a", 200, PATCH_OK),
    patch("patch: clear nullable fields", "fp-b", 200, PATCH_CLEAR),
    patch("patch: unicode event_id", UNICODE_ID, 200, PATCH_UNICODE),
    patch("patch: outcome fields", "fp-c", 200, PATCH_OUTCOME),
    patch("patch: sla_target_seconds 0", "fp-c", 422, {"sla_target_seconds": 0}),
    patch("patch: status alias", "fp-a", 422, {"status": "completed"}),
    patch("patch: unknown status", "fp-a", 422, {"status": "done"}),
    patch("patch: unknown field", "fp-a", 422, {"status": "success", "bogus": 1}),
    patch("patch: event_id not updatable", "fp-a", 422, {"event_id": "fp-z"}),
    patch("patch: null counter, status, api_posted", "fp-a", 422, PATCH_NULLS),
    patch("patch: bad counter", "fp-a", 422, {"items_failed": -1}),
    patch("patch: naive timestamp", "fp-a", 422, {"end_time": NAIVE}),
    patch("patch: NUL", "fp-a", 422, {"error_summary": "a\x00"}),
    patch("patch: empty object", "fp-a", 422, {}),
    patch("patch: not an object", "fp-a", 422, [SUCCESS]),
    patch("patch: bad JSON", "fp-a", 422, b"{"),
    patch("patch: empty body", "fp-a", 422, b""),
    patch("patch: text/plain", "fp-a", 415, SUCCESS, TEXT),
    patch("patch: oversized", "fp-a", 413, OVERSIZED),
    patch("patch: missing run", "fp-missing", 404, SUCCESS),
    patch("patch: missing unicode run", "fp ✓ missing %", 404, SUCCESS),
    patch("patch: invalid body on a missing run", "fp-missing", 422, {"bogus": 1}),
    Case("patch: trailing slash", "PATCH", at("fp-missing") + "/", 307, SUCCESS),
    # --- associate-commit ---
    commit("commit: ok", "fp-a", 200, COMMIT_FULL),
    commit("commit: unicode event_id", UNICODE_ID, 200, COMMIT_EXTRA),
    commit("commit: bad hash", "fp-a", 422, {**COMMIT, "commit_hash": "xyz1234"}),
    commit("commit: short hash", "fp-a", 422, {**COMMIT, "commit_hash": "abc"}),
    commit("commit: bad source", "fp-a", 422, {**COMMIT, "commit_source": "robot"}),
    commit("commit: naive timestamp", "fp-a", 422, {**COMMIT, "commit_timestamp": NAIVE}),
    commit("commit: missing fields", "fp-a", 422, {}),
    commit("commit: bad JSON", "fp-a", 422, b"nope"),
    commit("commit: text/plain", "fp-a", 415, COMMIT, TEXT),
    commit("commit: oversized", "fp-a", 413, OVERSIZED),
    commit("commit: missing run", "fp-missing", 404, COMMIT),
    get("commit: GET", at("fp-a", AC), 405),
    # --- GET one ---
    get("get: after patch and commit", at("fp-a")),
    get("get: every field, JSON objects, api_posted", at("fp-b")),
    get("get: status alias stored canonical", at("fp-c")),
    get("get: unicode event_id", at(UNICODE_ID)),
    get("get: self-hosted git links", at("fp-gitlab")),
    get("get: unparsable git repo", at("fp-unparsable-repo")),
    get("get: created by batch", at("fp-e")),
    get("get: missing", at("fp-missing"), 404),
    get("get: missing unicode", at("fp ✓ missing %"), 404),
    get("get: invalid percent-encoding", f"{RUNS}/%ff%c0", 404),
    get("get: NUL", f"{RUNS}/%00", 404),
    get("get: batch is an event_id", BATCH, 404),
    get("get: %2F is decoded before routing", f"{RUNS}/fp-a%2Fcommit-url"),
    get("get: dot segments", f"{RUNS}/..%2F..%2Fetc", 404),
    get("get: trailing slash", at("fp-b") + "/", 307),
    get("get: trailing %2F", at("fp-b") + "%2F", 307),
    # --- commit-url and repo-url ---
    get("commit-url: github", at("fp-b", "commit-url")),
    get("repo-url: github", at("fp-b", "repo-url")),
    get("commit-url: self-hosted", at("fp-gitlab", "commit-url")),
    get("repo-url: self-hosted", at("fp-gitlab", "repo-url")),
    get("commit-url: no repository", at("fp-a", "commit-url")),
    get("repo-url: no repository", at("fp-a", "repo-url")),
    get("commit-url: unparsable", at("fp-unparsable-repo", "commit-url")),
    get("repo-url: unknown host", at("fp-unknown-host", "repo-url")),
    get("commit-url: unicode event_id", at(UNICODE_ID, "commit-url")),
    get("commit-url: missing run", at("fp-missing", "commit-url"), 404),
    get("repo-url: missing run", at("fp-missing", "repo-url"), 404),
    get("commit-url: batch", at("batch", "commit-url"), 404),
    post("commit-url: POST", at("fp-b", "commit-url"), 405, {}),
    # --- run events ---
    events("events: one", "fp-a", 201, EVENT_ONE),
    events("events: array", "fp-a", 201, EVENTS),
    events("events: unicode event_id", UNICODE_ID, 201, [EVENT_ONE]),
    events("events: empty array", "fp-b", 201, []),
    events("events: missing run", "fp-missing", 404, EVENT_ONE),
    events("events: bad item", "fp-a", 422, [EVENT_ONE, {"level": "loud"}]),
    events("events: not an object or array", "fp-a", 422, "one"),
    events("events: too many", "fp-a", 422, [{}] * 1001),
    events("events: bad JSON", "fp-a", 422, b"[{]"),
    events("events: text/plain", "fp-a", 415, EVENT_ONE, TEXT),
    events("events: oversized", "fp-a", 413, b"[" + b" " * MAX_BATCH_BODY + b"]"),
    get("events: list", at("fp-a", EV)),
    get("events: list, unicode event_id", at(UNICODE_ID, EV)),
    get("events: list, none", at("fp-b", EV)),
    get("events: page", at("fp-a", EV) + "?limit=1&after_id=1"),
    get("events: list, missing run", at("fp-missing", EV), 404),
    get("events: limit 0", at("fp-a", EV) + "?limit=0", 422),
    get("events: after_id negative", at("fp-a", EV) + "?after_id=-1", 422),
    get("events: trailing slash", at("fp-a", EV) + "/", 307),
    Case("events: PATCH", "PATCH", at("fp-a", EV), 405, SUCCESS),
    # --- QC reviews ---
    review("qc: full", "fp-a", 201, {"score": 4, "notes": "ok ✓", "reviewer": "Zoë"}),
    review("qc: score only", "fp-a", 201, {"score": 1, "extra": True}),
    review("qc: unicode event_id", UNICODE_ID, 201, {"score": 5}),
    review("qc: score 0", "fp-a", 422, {"score": 0}),
    review("qc: score 6", "fp-a", 422, {"score": 6}),
    review("qc: score 2.5", "fp-a", 422, {"score": 2.5}),
    review("qc: score as a string", "fp-a", 422, {"score": "3"}),
    review("qc: score true", "fp-a", 422, {"score": True}),
    review("qc: missing run", "fp-missing", 404, {"score": 3}),
    review("qc: bad JSON", "fp-a", 422, b"{"),
    review("qc: text/plain", "fp-a", 415, {"score": 3}, TEXT),
    get("qc: list", at("fp-a", "qc")),
    get("qc: list, unicode event_id", at(UNICODE_ID, "qc")),
    get("qc: list, none", at("fp-b", "qc")),
    get("qc: list, missing run", at("fp-missing", "qc"), 404),
    Case("qc: PATCH", "PATCH", at("fp-a", "qc"), 405, SUCCESS),
    # --- GET list ---
    get("list: everything", RUNS, ids=ALL),
    get("list: agent_name", q(agent_name="fp-alpha"), ids=ALPHA),
    get("list: other agent_name", q(agent_name="fp-beta"), ids=BETA),
    get("list: unicode agent_name", q(agent_name="fp-ünï ✓"), ids=(UNICODE_ID,)),
    get("list: job_type", q(job_type="fp-deploy"), ids=("fp-e", "fp-b")),
    get("list: run_id", q(run_id="run-fp-c"), ids=("fp-c",)),
    get("list: parent_run_id", q(parent_run_id="run-fp-a"), ids=("fp-b",)),
    get("list: status", q(status="success"), ids=("fp-a",)),
    get("list: status alias", q(status="failed"), ids=("fp-c",)),
    get("list: status set by patch", q(status="cancelled"), ids=(UNICODE_ID,)),
    get("list: created_before", q(created_before="2026-01-12T10:02:00Z"), ids=("fp-b", "fp-a")),
    get("list: created_after", q(created_after="2026-01-12T12:10:00+02:00"), ids=("fp-f", "fp-e")),
    get("list: start_time_from", q(start_time_from="2026-01-12T11:00:00Z"), ids=LATE_START),
    get("list: start_time_to", q(start_time_to="2026-01-12T08:00:00+01:00"), ids=("fp-b",)),
    get("list: limit and offset", q(limit="2", offset="1"), ids=ALL[1:3]),
    get("list: combined", q(agent_name="fp-alpha", job_type="fp-build", limit="3"), ids=ALPHA[1:4]),
    get("list: unknown parameter ignored", f"{RUNS}?colour=blue&agent_name=fp-beta", ids=BETA),
    get("list: repeated parameter, last wins", f"{RUNS}?agent_name=x&agent_name=fp-beta", ids=BETA),
    get("list: '+' is a space", f"{RUNS}?agent_name=fp-%C3%BCn%C3%AF+%E2%9C%93", ids=(UNICODE_ID,)),
    get("list: blank value", f"{RUNS}?agent_name=", ids=()),
    get("list: empty pairs", f"{RUNS}?&&limit=1&", ids=ALL[:1]),
    get("list: offset past the end", q(offset="100"), ids=()),
    get("list: limit 0", q(limit="0"), 422),
    get("list: limit over 1000", q(limit="1001"), 422),
    get("list: limit not a number", q(limit="ten"), 422),
    get("list: limit blank", f"{RUNS}?limit=", 422),
    get("list: negative offset", q(offset="-1"), 422),
    get("list: unknown status", q(status="bogus"), 422),
    get("list: naive timestamp", q(created_after=NAIVE), 422),
    get("list: NUL in a filter", f"{RUNS}?agent_name=a%00b", 422),
    get("list: many bad parameters", f"{RUNS}?limit=0&offset=x&status=no&start_time_to=x", 422),
    # --- other paths and methods ---
    get("path: collection with trailing slash", f"{RUNS}/", 307),
    post("path: POST collection with trailing slash", f"{RUNS}/", 307, A),
    post("path: batch with trailing slash", f"{BATCH}/", 307, [E]),
    get("path: commit-url with trailing slash", at("fp-b", "commit-url") + "/", 307),
    get("path: unknown subpath", at("x", "unknown"), 404),
    get("path: unknown sub-subpath", at("fp-b", "commit-url") + "/x", 404),
    get("path: empty event_id", f"{RUNS}//commit-url", 404),
    get("path: prefix only", "/api/v1/runsx", 404),
    Case("path: DELETE collection", "DELETE", RUNS, 405),
    Case("path: PUT collection", "PUT", RUNS, 405, A),
    Case("path: HEAD collection", "HEAD", RUNS, 405),
    Case("path: DELETE run", "DELETE", at("fp-a"), 405),
    Case("path: PUT run", "PUT", at("fp-a"), 405, SUCCESS),
    post("path: POST run", at("fp-a"), 405, A),
    Case("path: OPTIONS run", "OPTIONS", at("fp-a"), 405),
    get("path: GET batch", BATCH, 404),
    patch("path: PATCH batch", "batch", 404, SUCCESS),
    # --- finally, every run as stored ---
    get("list: everything, at the end", q(limit="1000"), ids=ALL),
)

# Auth and rate limiting wrap the fast paths: their answers must not depend on them.
# Three requests a minute per valid key, and per address for everything else (no key,
# another scheme, a wrong key): the fourth of each is refused.
BEARER = (("content-type", JSON_TYPE), ("authorization", f"bearer {TOKEN}"))
BASIC = (("authorization", f"Basic {TOKEN}"),)
WRONG = (("authorization", "Bearer nope"),)
GUARDED_SCENARIO: tuple[Case, ...] = (
    post("guarded: create without token", RUNS, 401, A),
    post("guarded: create with Basic", RUNS, 401, A, BASIC),
    get("guarded: reads need the token too", at("fp-a"), 401),  # issue 10
    post("guarded: create with token", RUNS, 201, A, BEARER),
    # A wrong key buys no budget of its own: the address's three are spent.
    patch("guarded: patch with a wrong token, over the limit", "fp-a", 429, SUCCESS, WRONG),
    post("guarded: batch with token", BATCH, 200, [B, A], BEARER),
    Case("guarded: read with token", "GET", at("fp-a"), 200, headers=BEARER[1:]),
    get("guarded: list over the limit", RUNS, 429),
    post("guarded: create over the limit", RUNS, 429, C, BEARER),
)
# fmt: on


# ----- servers, requests and the dict-read oracle -----


@dataclass(frozen=True)
class Answer:
    """What one server answered, and what the dict reads would have answered."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    oracle: bytes | None  # for a 200 run read: the body built from dicts, else None


def start_pair(root: Path, env: dict[str, str]) -> tuple[ServerProcess, ServerProcess]:
    fast = ServerProcess(root / "fast.sqlite", {**env, **FAST})
    slow = ServerProcess(root / "slow.sqlite", {**env, **SLOW})
    fast.start()
    try:
        slow.start()
    except BaseException:
        fast.stop()
        raise
    return fast, slow


def request_content(case: Case) -> tuple[Any, list[tuple[str, str]]]:
    if case.body is NO_BODY:
        return None, list(case.headers or ())
    raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    headers = list(case.headers) if case.headers is not None else [("content-type", JSON_TYPE)]
    if case.chunked:  # a fresh iterator per server: httpx sends it chunked
        half = len(raw) // 2
        return iter([raw[:half], raw[half:]]), headers
    return raw, headers


def stored_run_json(server: ServerProcess, event_id: str) -> bytes:
    """The run as the dict reads served it: ``orjson.dumps(public_run(get_run(...)))``."""
    sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM agent_runs WHERE event_id = ?"
    rows = query(server, sql, [event_id])
    assert len(rows) == 1, event_id
    run = decode_row(rows[0])
    hosts = parse_git_hosts(GIT_HOSTS)
    run["commit_url"] = gitlinks.commit_url(run.get("git_repo"), run.get("git_commit_hash"), hosts)
    run["repo_url"] = gitlinks.repo_url(run.get("git_repo"), hosts)
    return orjson.dumps(run)


def oracle(case: Case, server: ServerProcess, status: int, body: bytes) -> bytes | None:
    """For a successful read of runs, its body rebuilt from the stored rows as dicts."""
    path = unquote(case.path.partition("?")[0])
    if case.method != "GET" or status != 200:
        return None
    if path == RUNS:
        ids = [run["event_id"] for run in orjson.loads(body)]
        return b"[" + b",".join(stored_run_json(server, i) for i in ids) + b"]"
    if path.count("/") == RUNS.count("/") + 1:  # /api/v1/runs/{event_id}
        return stored_run_json(server, orjson.loads(body)["event_id"])
    return None


def ask(client: httpx.Client, server: ServerProcess, case: Case) -> Answer:
    content, headers = request_content(case)
    response = client.request(case.method, case.path, content=content, headers=headers)
    kept = sorted(
        (name, value.replace(server.url, "<server>") if name == "location" else value)
        for name, value in response.headers.multi_items()
        if name not in UNSTABLE_HEADERS
    )
    body = response.content
    return Answer(
        response.status_code, kept, body, oracle(case, server, response.status_code, body)
    )


def play(
    scenario: tuple[Case, ...], fast: ServerProcess, slow: ServerProcess
) -> dict[str, tuple[Answer, Answer]]:
    """Send every case to both servers, in order; the answers by case name."""
    answers: dict[str, tuple[Answer, Answer]] = {}
    with (
        httpx.Client(base_url=fast.url, timeout=30) as fast_client,
        httpx.Client(base_url=slow.url, timeout=30) as slow_client,
    ):
        for case in scenario:
            answers[case.name] = (ask(fast_client, fast, case), ask(slow_client, slow, case))
    return answers


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    servers = start_pair(tmp_path_factory.mktemp("fast-paths"), SETTINGS)
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def answers(pair: tuple[ServerProcess, ServerProcess]) -> dict[str, tuple[Answer, Answer]]:
    return play(SCENARIO, *pair)


@pytest.fixture(scope="module")
def guarded_answers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[Answer, Answer]]]:
    servers = start_pair(tmp_path_factory.mktemp("fast-paths-guarded"), {**SETTINGS, **GUARDED})
    try:
        yield play(GUARDED_SCENARIO, *servers)
    finally:
        for server in servers:
            server.stop()


def masked(body: bytes) -> bytes:
    body = QC_TIME.sub(rb'\1"<server time>"', body)
    return SERVER_TIME.sub(b'"updated_at":"<server time>"', body)


def assert_same_answer(case: Case, fast: Answer, slow: Answer) -> None:
    both = f"{case.method} {case.path}\n fast: {fast}\n slow: {slow}"
    assert fast.status == slow.status, both
    assert fast.headers == slow.headers, both
    assert masked(fast.body) == masked(slow.body), both
    assert slow.status == case.status, both  # the scenario does what it says
    for answer in (fast, slow):
        if answer.oracle is not None:
            assert answer.body == answer.oracle, both
    if case.ids is not None:
        assert [run["event_id"] for run in orjson.loads(slow.body)] == list(case.ids), both


# ----- tests -----


def test_scenario_names_are_unique() -> None:
    names = [case.name for case in (*SCENARIO, *GUARDED_SCENARIO)]
    assert len(names) == len(set(names))


def test_the_setting_really_switches_the_dispatcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Otherwise every comparison would pass by comparing a server with itself.

    Only the fast paths dispatch through ``COLLECTION_HANDLERS``; the FastAPI route calls
    ``create_run`` itself, which refuses a text/plain body.
    """

    async def marker(app_state: Any, incoming: Any) -> tuple[int, Any]:
        return 299, {"served_by": "fast path"}

    monkeypatch.setitem(COLLECTION_HANDLERS, ("POST", ""), marker)
    for env, status in ((FAST, 299), (SLOW, 415)):
        for name, value in {**SETTINGS, **env}.items():
            monkeypatch.setenv(name, value)
        app = create_app(load_settings(db_path=tmp_path / "unused.sqlite"))
        assert asyncio.run(post_text_in_process(app)) == status


async def post_text_in_process(app: Any) -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
        response = await client.post(RUNS, content=b"x", headers=dict(TEXT))
    return response.status_code


@pytest.mark.parametrize("case", SCENARIO, ids=lambda case: case.name)
def test_same_answer(case: Case, answers: dict[str, tuple[Answer, Answer]]) -> None:
    assert_same_answer(case, *answers[case.name])


@pytest.mark.parametrize("case", GUARDED_SCENARIO, ids=lambda case: case.name)
def test_same_answer_behind_auth_and_rate_limit(
    case: Case, guarded_answers: dict[str, tuple[Answer, Answer]]
) -> None:
    assert_same_answer(case, *guarded_answers[case.name])


def stored_rows(server: ServerProcess) -> tuple[list[tuple[Any, ...]], ...]:
    columns = [
        name
        for name in table_columns(server, "agent_runs")
        if name not in {"id", "created_at", "updated_at"}
    ]
    runs = query(
        server,
        f"SELECT {', '.join(columns)}, updated_at IS NULL FROM agent_runs ORDER BY event_id",
    )
    counts = query(server, "SELECT * FROM run_counts ORDER BY agent_name")
    hourly = query(server, "SELECT * FROM run_counts_hourly ORDER BY hour")
    return runs, counts, hourly


def test_stored_rows_are_identical(
    pair: tuple[ServerProcess, ServerProcess], answers: dict[str, tuple[Answer, Answer]]
) -> None:
    fast, slow = pair
    fast_rows, slow_rows = stored_rows(fast), stored_rows(slow)
    assert sorted(row[0] for row in slow_rows[0]) == sorted(run["event_id"] for run in STORED)
    assert fast_rows[0] == slow_rows[0]
    assert fast_rows[1:] == slow_rows[1:]


# ----- a full write queue -----

BURST_REQUESTS = 200
BURST_THREADS = 32


def burst(server: ServerProcess, round_: int) -> list[tuple[str, Answer]]:
    """Many concurrent creates; with a one-slot queue some are refused with 503."""
    limits = httpx.Limits(max_connections=BURST_THREADS)
    with httpx.Client(base_url=server.url, timeout=30, limits=limits) as client:

        def create(n: int) -> tuple[str, Answer]:
            event_id = f"fp-burst-{round_}-{n}"
            return event_id, ask(client, server, post("burst", RUNS, 201, run(event_id, 0)))

        with ThreadPoolExecutor(BURST_THREADS) as pool:
            return list(pool.map(create, range(BURST_REQUESTS)))


def test_a_full_write_queue_is_refused_alike(start_server: StartServer, tmp_path: Path) -> None:
    """503 ``Retry-After`` from ``ApiError.headers``: the one error with its own header."""
    env = {"TELEMETRY_INGEST_QUEUE_SIZE": "1", "TELEMETRY_GROUP_COMMIT": "false"}
    refusals: list[set[tuple[int, tuple[tuple[str, str], ...], bytes]]] = []
    for name, path_env in (("fast", FAST), ("slow", SLOW)):
        server = start_server(tmp_path / f"{name}.sqlite", **env, **path_env)
        created: set[str] = set()
        refused: set[tuple[int, tuple[tuple[str, str], ...], bytes]] = set()
        for round_ in range(5):  # one burst nearly always suffices
            for event_id, answer in burst(server, round_):
                if answer.status == 201:
                    created.add(event_id)
                else:
                    refused.add((answer.status, tuple(answer.headers), answer.body))
            if refused:
                break
        assert refused, f"{name}: the write queue never filled"
        stored = {row[0] for row in query(server, "SELECT event_id FROM agent_runs")}
        assert stored == created, name  # a refused run is not stored
        refusals.append(refused)
    assert refusals[0] == refusals[1]
    assert [status for status, _, _ in refusals[1]] == [503]
