"""Every script under examples/ runs against a real server and records what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from support import ServerProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, server: ServerProcess, spool: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env={**os.environ, "TELEMETRY_API_URL": server.url, "TELEMETRY_SPOOL_DIR": str(spool)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_quickstart_records_a_successful_run(shared_server: ServerProcess, tmp_path: Path) -> None:
    event_id = run_example("quickstart.py", shared_server, tmp_path)
    run = httpx.get(f"{shared_server.url}/api/v1/runs/{event_id}").json()
    assert (run["agent_name"], run["status"], run["items_succeeded"]) == (
        "my-agent",
        "success",
        100,
    )
    assert run["metrics_json"] == {"input_tokens": 1500, "output_tokens": 3000}


def test_decorator_example_tracks_both_functions(
    shared_server: ServerProcess, tmp_path: Path
) -> None:
    out = run_example("decorator.py", shared_server, tmp_path)
    assert out.splitlines() == ["[2, 4, 6]", "True"]
    runs = httpx.get(
        f"{shared_server.url}/api/v1/runs", params={"agent_name": "example.decorated_agent"}
    ).json()
    assert {"etl", "fetch"} <= {r["job_type"] for r in runs}


def test_start_end_example_links_a_commit(shared_server: ServerProcess, tmp_path: Path) -> None:
    event_id = run_example("start_end.py", shared_server, tmp_path)
    run = httpx.get(f"{shared_server.url}/api/v1/runs/{event_id}").json()
    assert (run["status"], run["git_commit_source"], run["output_summary"]) == (
        "success",
        "llm",
        "answered",
    )


def test_bulk_upload_example_sends_every_run(shared_server: ServerProcess, tmp_path: Path) -> None:
    assert run_example("bulk_upload.py", shared_server, tmp_path) == "50"
