"""Property-based fuzzing of every operation of our own ``/openapi.json`` (schemathesis).

Runs the ``st`` CLI as a subprocess against a real server process, positive and negative
data, with a fixed seed and a bounded example count per operation (``LT_FUZZ_EXAMPLES``,
20 in ``./dev test``; ``./dev fuzz`` uses 500). It fails on any 5xx and on any answer
whose status code, content type or body the OpenAPI document does not describe. A run
and an agent run are created first and their ids given as the path parameters, so the
per-run operations are exercised past their 404.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from support import StartServer

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)
EXAMPLES = int(os.environ.get("LT_FUZZ_EXAMPLES", "20"))
SEED = int(os.environ.get("LT_FUZZ_SEED", "1"))
RUN_ID = "7f1c2a9e-0000-4000-8000-00000000f022"
EVENT_ID = "fuzz-target-run"


def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    run = {"event_id": EVENT_ID, "run_id": "fuzz", "agent_name": "fuzz", "job_type": "fuzz",
           "start_time": "2026-01-12T10:00:00Z"}  # fmt: skip
    assert httpx.post(f"{server.url}/api/v1/runs", json=run).status_code == 201
    agent_run = {"run_id": RUN_ID, "agent_name": "fuzz"}
    assert httpx.post(f"{server.url}/api/agent-runs", json=agent_run).status_code == 200
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.event_id" = "{EVENT_ID}"\n"path.run_id" = "{RUN_ID}"\n')
    report = tmp_path / "fuzz-report.json"
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file", str(config),
        "run", f"{server.url}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        "--no-shrink",
        "--phases", "examples,coverage,fuzzing",
        # One worker: hypothesis' lambda descriptions call ast.parse, which CPython 3.11
        # can fail ("AST constructor recursion depth mismatch") from concurrent threads.
        "--workers", "1",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report),
        "--no-color",
    ]  # fmt: skip
    # A "did not hang" guard only: ~1 s per 100 cases on a 2-core machine.
    limit = 120 + EXAMPLES * 6
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=limit, cwd=tmp_path, check=False
    )
    output = result.stdout[-20_000:] + result.stderr[-5_000:]
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    operations = summary["operations"]
    print(
        f"\nfuzz: {cases['generated']} cases over {operations['tested']} operations "
        f"({EXAMPLES} examples per operation, seed {SEED}); "
        f"{cases['with_failures']} failed, {cases['errored']} errored"
    )
    assert summary["failures"] == [], output
    assert summary["errors"] == [], output
    assert cases["with_failures"] == 0, output
    assert cases["errored"] == 0, output
    assert operations["tested"] == operations["total"] >= 30, output
    assert cases["generated"] >= operations["tested"] * min(EXAMPLES, 10), output
    assert result.returncode == 0, output
    assert "Traceback" not in server.log()
