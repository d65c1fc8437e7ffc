"""PII scrubbing on ingest (TELEMETRY_PII_SCRUB), field by field, through a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from support import ServerProcess, new_run

EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
IPV4 = "192.168.10.20"
IPV6 = "2001:db8::8a2e:370:7334"
TOKEN = "Bearer abcdef0123456789xyz"
AWS = "AKIAIOSFODNN7EXAMPLE"
PII = f"mail {EMAIL} phone {PHONE} card {CARD} ip {IPV4} {IPV6} auth {TOKEN} key {AWS}"
SCRUBBED = "mail [email] phone [phone] card [card] ip [ip] [ip] auth Bearer [secret] key [secret]"
TEXT_FIELDS = (
    "item_name",
    "agent_owner",
    "input_summary",
    "output_summary",
    "source_ref",
    "target_ref",
    "error_summary",
    "error_details",
    "git_commit_author",
)
COMMIT = "da39a3ee5e6b4b0d3255bfef95601890afd80709"


@pytest.fixture(scope="module")
def scrubbing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server started with TELEMETRY_PII_SCRUB=true."""
    server = ServerProcess(
        tmp_path_factory.mktemp("pii") / "telemetry.sqlite", {"TELEMETRY_PII_SCRUB": "true"}
    )
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.stop()


def pii_json() -> dict[str, Any]:
    return {
        "contact": EMAIL,
        "note": PII,
        "count": 3,
        "nested": {"list": [IPV4, {"card": CARD}], "ok": True},
        "api_key": "whatever-it-is",
    }


def scrubbed_json() -> dict[str, Any]:
    return {
        "contact": "[email]",
        "note": SCRUBBED,
        "count": 3,
        "nested": {"list": ["[ip]", {"card": "[card]"}], "ok": True},
        "api_key": "[secret]",
    }


def pii_run() -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    return new_run(
        run_id=f"2026-01-12T10:30:00Z-agent-{tag}",
        parent_run_id=f"parent-{tag}",
        insight_id=f"insight-{tag}",
        git_repo="https://github.com/acme/widgets",
        git_branch="feature/x-1.2.3",
        git_commit_hash=COMMIT,
        metrics_json=pii_json(),
        context_json=pii_json(),
        **{name: PII for name in TEXT_FIELDS},
    )


def fetch(client: httpx.Client, event_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/runs/{quote(event_id, safe='')}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def assert_identifiers_intact(run: dict[str, Any], sent: dict[str, Any]) -> None:
    for name in (
        "event_id",
        "run_id",
        "agent_name",
        "job_type",
        "parent_run_id",
        "insight_id",
        "git_repo",
        "git_branch",
        "git_commit_hash",
    ):
        assert run[name] == sent[name], name
    assert run["start_time"] == "2026-01-12T10:30:00.000000Z"


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_created_run_text_field_is_scrubbed(scrubbing: httpx.Client, field: str) -> None:
    body = pii_run()
    assert scrubbing.post("/api/v1/runs", json=body).status_code == 201
    run = fetch(scrubbing, body["event_id"])
    assert run[field] == SCRUBBED
    assert_identifiers_intact(run, body)


@pytest.mark.parametrize("field", ["metrics_json", "context_json"])
def test_created_run_json_values_are_scrubbed(scrubbing: httpx.Client, field: str) -> None:
    body = pii_run()
    assert scrubbing.post("/api/v1/runs", json=body).status_code == 201
    assert fetch(scrubbing, body["event_id"])[field] == scrubbed_json()


def test_categories_and_identifiers_with_pii_like_text_are_kept(scrubbing: httpx.Client) -> None:
    body = new_run(agent_name=f"bot-{EMAIL}", host="10.1.2.3", product="p 555-123-4567")
    assert scrubbing.post("/api/v1/runs", json=body).status_code == 201
    run = fetch(scrubbing, body["event_id"])
    assert (run["agent_name"], run["host"], run["product"]) == (
        body["agent_name"],
        "10.1.2.3",
        "p 555-123-4567",
    )


@pytest.mark.parametrize("field", [*TEXT_FIELDS, "metrics_json", "context_json"])
def test_patched_field_is_scrubbed(scrubbing: httpx.Client, field: str) -> None:
    body = new_run()
    assert scrubbing.post("/api/v1/runs", json=body).status_code == 201
    value: Any = pii_json() if field.endswith("_json") else PII
    response = scrubbing.patch(f"/api/v1/runs/{body['event_id']}", json={field: value})
    assert response.status_code == 200, response.text
    expected = scrubbed_json() if field.endswith("_json") else SCRUBBED
    assert fetch(scrubbing, body["event_id"])[field] == expected


def test_commit_author_of_associate_commit_is_scrubbed(scrubbing: httpx.Client) -> None:
    body = new_run()
    assert scrubbing.post("/api/v1/runs", json=body).status_code == 201
    response = scrubbing.post(
        f"/api/v1/runs/{body['event_id']}/associate-commit",
        json={"commit_hash": COMMIT, "commit_source": "ci", "commit_author": f"Jane <{EMAIL}>"},
    )
    assert response.status_code == 200, response.text
    run = fetch(scrubbing, body["event_id"])
    assert (run["git_commit_author"], run["git_commit_hash"]) == ("Jane <[email]>", COMMIT)


def test_batch_items_are_scrubbed(scrubbing: httpx.Client) -> None:
    bodies = [pii_run(), pii_run()]
    response = scrubbing.post("/api/v1/runs/batch", json=bodies)
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 2
    for body in bodies:
        run = fetch(scrubbing, body["event_id"])
        assert all(run[name] == SCRUBBED for name in TEXT_FIELDS)
        assert run["context_json"] == run["metrics_json"] == scrubbed_json()
        assert_identifiers_intact(run, body)


def test_event_message_and_data_are_scrubbed(scrubbing: httpx.Client) -> None:
    body = new_run()
    assert scrubbing.post("/api/v1/runs", json=body).status_code == 201
    path = f"/api/v1/runs/{body['event_id']}/events"
    sent = [{"message": PII, "data": pii_json()}, {"message": "plain 1.2.3", "level": "ERROR"}]
    assert scrubbing.post(path, json=sent).status_code == 201
    events = scrubbing.get(path).json()
    assert [(e["message"], e["data"], e["level"]) for e in events] == [
        (SCRUBBED, scrubbed_json(), "info"),
        ("plain 1.2.3", None, "error"),
    ]


@pytest.mark.parametrize("prefix", ["/api/v1/runs", "/api/agent-runs"])
def test_qc_notes_and_reviewer_are_scrubbed(scrubbing: httpx.Client, prefix: str) -> None:
    body = new_run(event_id=str(uuid.uuid4()))
    assert scrubbing.post("/api/v1/runs", json=body).status_code == 201
    path = f"{prefix}/{body['event_id']}/qc"
    response = scrubbing.post(path, json={"score": 4, "notes": PII, "reviewer": EMAIL})
    assert response.status_code == 201, response.text
    [review] = scrubbing.get(path).json()
    assert (review["score"], review["notes"], review["reviewer"]) == (4, SCRUBBED, "[email]")


def test_agent_run_metadata_and_qc_are_scrubbed(scrubbing: httpx.Client) -> None:
    run_id = str(uuid.uuid4())
    body = {
        "run_id": run_id,
        "agent_name": "support-bot",
        "started_at": "2026-01-12T10:30:00Z",
        "metadata": pii_json(),
        "qc": [{"score": 5, "notes": PII}],
    }
    response = scrubbing.post("/api/agent-runs", json=body)
    assert response.status_code == 200, response.text
    run = fetch(scrubbing, run_id)
    assert run["context_json"] == scrubbed_json()
    assert (run["event_id"], run["run_id"], run["agent_name"]) == (run_id, run_id, "support-bot")
    [review] = scrubbing.get(f"/api/agent-runs/{run_id}/qc").json()
    assert review["notes"] == SCRUBBED
    # a resent (identical) post is still a duplicate: scrubbing is deterministic
    assert scrubbing.post("/api/agent-runs", json=body).json()["status"] == "duplicate"


def test_default_server_stores_the_text_unchanged(api: httpx.Client) -> None:
    body = pii_run()
    assert api.post("/api/v1/runs", json=body).status_code == 201
    run = fetch(api, body["event_id"])
    assert all(run[name] == PII for name in TEXT_FIELDS)
    assert run["metrics_json"] == run["context_json"] == pii_json()
    path = f"/api/v1/runs/{body['event_id']}/events"
    assert api.post(path, json={"message": PII, "data": pii_json()}).status_code == 201
    [event] = api.get(path).json()
    assert (event["message"], event["data"]) == (PII, pii_json())
    qc = f"/api/v1/runs/{body['event_id']}/qc"
    assert api.post(qc, json={"score": 2, "notes": PII}).status_code == 201
    assert api.get(qc).json()[0]["notes"] == PII


def test_extra_patterns_are_redacted(start_server: Any) -> None:
    server: ServerProcess = start_server(
        TELEMETRY_PII_SCRUB="true", TELEMETRY_PII_EXTRA_PATTERNS=r'["EMP-\\d{6}", "(?i)falcon"]'
    )
    body = new_run(
        error_summary=f"EMP-123456 on Falcon mailed {EMAIL}", context_json={"e": "EMP-000001"}
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/api/v1/runs", json=body).status_code == 201
        run = fetch(client, body["event_id"])
    assert run["error_summary"] == "[redacted] on [redacted] mailed [email]"
    assert run["context_json"] == {"e": "[redacted]"}


def test_extra_patterns_alone_leave_builtin_rules_off(start_server: Any) -> None:
    server: ServerProcess = start_server(TELEMETRY_PII_EXTRA_PATTERNS=r'["EMP-\\d{6}"]')
    body = new_run(error_summary=f"EMP-123456 mailed {EMAIL}")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/api/v1/runs", json=body).status_code == 201
        assert fetch(client, body["event_id"])["error_summary"] == f"[redacted] mailed {EMAIL}"


@pytest.mark.parametrize("spec", ['["(unclosed"]', "not json"])
def test_an_invalid_extra_pattern_refuses_to_start(tmp_path: Path, spec: str) -> None:
    env = {
        **os.environ,
        "TELEMETRY_DB_PATH": str(tmp_path / "t.sqlite"),
        "TELEMETRY_API_PORT": "1",  # never reached: refused before binding
        "TELEMETRY_PII_SCRUB": "true",
        "TELEMETRY_PII_EXTRA_PATTERNS": spec,
    }
    result = subprocess.run(
        [sys.executable, "-m", "local_telemetry", "serve"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "TELEMETRY_PII_EXTRA_PATTERNS" in result.stderr
