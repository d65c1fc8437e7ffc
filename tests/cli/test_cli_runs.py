"""``local-telemetry runs list|show|tail`` as real subprocesses against real servers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import httpx
import pytest

from cli_support import clean_env, cli, cli_against
from support import ServerProcess, StartServer, free_port, new_run

TAIL_SECONDS = 30


def post_run(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    """Create one run; the stored run as the API answers it."""
    body = new_run(**fields)
    response = api.post("/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    stored = api.get(f"/api/v1/runs/{body['event_id']}")
    assert stored.status_code == 200, stored.text
    run: dict[str, Any] = stored.json()
    return run


def listed(server: ServerProcess, *args: str) -> list[str]:
    """The event_ids ``runs list --json ARGS`` prints, in its order."""
    result = cli_against(server, "runs", "list", "--json", *args)
    assert result.returncode == 0, result.stderr
    return [run["event_id"] for run in json.loads(result.stdout)]


@pytest.fixture
def three_runs(api: httpx.Client) -> tuple[str, list[dict[str, Any]]]:
    """An agent of its own with three runs (oldest first) and another agent's run."""
    agent = f"cli-runs-{uuid.uuid4().hex[:10]}"
    first = post_run(
        api,
        agent_name=agent,
        job_type="job-one",
        status="success",
        run_id=f"root-{agent}",
        start_time="2026-01-10T08:00:00Z",
        items_succeeded=7,
        items_failed=1,
    )
    second = post_run(
        api,
        agent_name=agent,
        job_type="job-two",
        status="failure",
        parent_run_id=f"root-{agent}",
        start_time="2026-01-11T08:00:00Z",
    )
    third = post_run(
        api,
        agent_name=agent,
        job_type="job-one",
        status="running",
        start_time="2026-01-12T08:00:00Z",
    )
    post_run(api, agent_name=f"{agent}-other", job_type="job-one", status="success")
    return agent, [first, second, third]


def test_list_filters_select_exactly_the_matching_runs(
    shared_server: ServerProcess, three_runs: tuple[str, list[dict[str, Any]]]
) -> None:
    agent, runs = three_runs
    first, second, third = (run["event_id"] for run in runs)
    assert listed(shared_server, "--agent-name", agent) == [third, second, first]
    assert listed(shared_server, "--agent-name", agent, "--job-type", "job-one") == [third, first]
    assert listed(shared_server, "--run-id", f"root-{agent}") == [first]
    assert listed(shared_server, "--parent-run-id", f"root-{agent}") == [second]
    assert listed(shared_server, "--agent-name", agent, "--status", "failure") == [second]
    assert listed(
        shared_server,
        "--agent-name",
        agent,
        "--start-time-from",
        "2026-01-11T00:00:00Z",
        "--start-time-to",
        "2026-01-11T23:59:59Z",
    ) == [second]
    assert listed(
        shared_server, "--agent-name", agent, "--created-after", runs[0]["created_at"]
    ) == [third, second]
    assert listed(
        shared_server, "--agent-name", agent, "--created-before", runs[2]["created_at"]
    ) == [second, first]


def test_list_limit_and_offset_page_through_the_runs(
    shared_server: ServerProcess, three_runs: tuple[str, list[dict[str, Any]]]
) -> None:
    agent, runs = three_runs
    first, second, third = (run["event_id"] for run in runs)
    assert listed(shared_server, "--agent-name", agent, "--limit", "2") == [third, second]
    assert listed(shared_server, "--agent-name", agent, "--limit", "2", "--offset", "2") == [first]


def test_list_json_is_the_servers_list_unchanged(
    shared_server: ServerProcess, api: httpx.Client, three_runs: tuple[str, list[dict[str, Any]]]
) -> None:
    agent, _ = three_runs
    result = cli_against(shared_server, "runs", "list", "--json", "--agent-name", agent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == api.get("/api/v1/runs", params={"agent_name": agent}).json()


def test_list_table_shows_agents_statuses_items_and_ids(
    shared_server: ServerProcess, three_runs: tuple[str, list[dict[str, Any]]]
) -> None:
    agent, runs = three_runs
    result = cli_against(shared_server, "runs", "list", "--agent-name", agent)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for run in runs:
        assert run["event_id"] in out
    assert out.count(agent) == 3
    for status in ("success", "failure", "running"):
        assert status in out
    assert "7 / 1" in out  # items succeeded / failed of the first run
    assert "2026-01-10 08:00:00Z" in out


def test_list_without_a_match_says_so_on_stderr_and_exits_0(shared_server: ServerProcess) -> None:
    nobody = f"nobody-{uuid.uuid4().hex}"
    result = cli_against(shared_server, "runs", "list", "--agent-name", nobody)
    assert result.returncode == 0
    assert result.stdout == ""
    assert "no runs match" in result.stderr
    as_json = cli_against(shared_server, "runs", "list", "--json", "--agent-name", nobody)
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--created-after", "yesterday"), "created_after: not an ISO 8601 timestamp"),
        (("--limit", "1001"), "limit"),
        (("--status", "exploded"), "status"),
    ],
)
def test_list_bad_values_exit_2_with_the_servers_message(
    shared_server: ServerProcess, args: tuple[str, ...], message: str
) -> None:
    result = cli_against(shared_server, "runs", "list", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: 422")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_server_exits_1_naming_the_address() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for command in (("runs", "list"), ("runs", "show", "x"), ("runs", "tail", "--timeout", "5")):
        result = cli(*command, TELEMETRY_API_URL=url)
        assert result.returncode == 1, command
        assert f"cannot reach the server at {url}" in result.stderr
        assert "Traceback" not in result.stderr


def test_show_prints_the_run_its_events_and_qc_reviews(
    shared_server: ServerProcess, api: httpx.Client
) -> None:
    run = post_run(api, metrics_json={"pages": 12, "langs": ["en", "de"]}, status="success")
    event_id = run["event_id"]
    events = [
        {"message": "fetched pages", "level": "info", "data": {"count": 12}},
        {"message": "one page timed out", "level": "warning"},
    ]
    assert api.post(f"/api/v1/runs/{event_id}/events", json=events).status_code == 201
    review = {"score": 4, "notes": "tidy output", "reviewer": "qc-bot"}
    assert api.post(f"/api/v1/runs/{event_id}/qc", json=review).status_code == 201

    result = cli_against(shared_server, "runs", "show", event_id, "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["run"] == api.get(f"/api/v1/runs/{event_id}").json()
    assert [e["message"] for e in shown["events"]] == ["fetched pages", "one page timed out"]
    assert shown["events"][0]["data"] == {"count": 12}
    assert [(q["score"], q["reviewer"]) for q in shown["qc"]] == [(4, "qc-bot")]

    human = cli_against(shared_server, "runs", "show", event_id)
    assert human.returncode == 0, human.stderr
    out = human.stdout
    for text in (event_id, run["agent_name"], "metrics_json", '"pages": 12', "one page timed out"):
        assert text in out
    assert "Events (2)" in out
    assert "QC reviews (1)" in out
    assert "qc-bot" in out
    assert "tidy output" in out


def test_show_of_an_agent_run_lists_the_reviews_posted_with_it(
    shared_server: ServerProcess, api: httpx.Client
) -> None:
    run_id = str(uuid.uuid4())
    body = {
        "run_id": run_id,
        "agent_name": f"cli-show-{run_id[:8]}",
        "started_at": "2026-01-12T10:00:00Z",
        "ended_at": "2026-01-12T10:02:00Z",
        "resolution": "escalated",
        "qc": [{"score": 2, "notes": "missed a step"}],
    }
    assert api.post("/api/agent-runs", json=body).status_code == 200
    result = cli_against(shared_server, "runs", "show", run_id, "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["run"]["status"] == "partial"
    assert shown["events"] == []
    assert [q["notes"] for q in shown["qc"]] == ["missed a step"]


def test_show_of_an_unknown_run_exits_2(shared_server: ServerProcess) -> None:
    missing = f"missing-{uuid.uuid4()}"
    result = cli_against(shared_server, "runs", "show", missing)
    assert result.returncode == 2
    assert f"no run with event_id '{missing}'" in result.stderr
    assert result.stdout == ""


# ----- runs tail -----


def start_tail(server: ServerProcess, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "local_telemetry", "runs", "tail", *args],
        env=clean_env(TELEMETRY_API_URL=server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_lines(stream: IO[str] | None, count: int) -> list[str]:
    """``count`` lines of a tail's output (the tail's own --timeout bounds the wait)."""
    assert stream is not None
    lines = [stream.readline() for _ in range(count)]
    assert all(lines), f"the output ended early: {lines}"
    return lines


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=TAIL_SECONDS + 15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


def test_tail_prints_the_last_n_then_every_new_run_exactly_once(
    shared_server: ServerProcess, api: httpx.Client
) -> None:
    agent = f"cli-tail-{uuid.uuid4().hex[:10]}"
    old = [post_run(api, agent_name=agent)["event_id"] for _ in range(5)]
    process = start_tail(
        shared_server,
        "--agent-name",
        agent,
        "--json",
        "-n",
        "3",
        "--interval",
        "0.2",
        "--max-runs",
        "54",
        "--timeout",
        str(TAIL_SECONDS),
    )
    try:
        window = [json.loads(line)["event_id"] for line in read_lines(process.stdout, 3)]
        assert window == old[2:]  # the newest three, oldest first

        # Four runs in one batch share one created_at; then a burst of 50 from 8 clients.
        together = [new_run(agent_name=agent) for _ in range(4)]
        batch = api.post("/api/v1/runs/batch", json=together)
        assert batch.json()["inserted"] == 4
        post_run(api, agent_name=f"{agent}-other")  # filtered out
        with ThreadPoolExecutor(8) as pool:
            burst = list(pool.map(lambda _: post_run(api, agent_name=agent)["event_id"], range(50)))
    finally:
        code, out, err = finish(process)
    assert code == 0, err
    printed = [json.loads(line)["event_id"] for line in out.splitlines()]
    expected = {run["event_id"] for run in together} | set(burst)
    assert len(printed) == len(expected) == 54
    assert set(printed) == expected
    assert not set(printed) & set(old)
    created = [
        run["created_at"] for run in api.get("/api/v1/runs", params={"agent_name": agent}).json()
    ]
    assert len(set(created[-9:-5])) == 1  # the batch really did share a created_at


def test_tail_human_lines_and_timeout_end_with_exit_0(
    shared_server: ServerProcess, api: httpx.Client
) -> None:
    agent = f"cli-tail-{uuid.uuid4().hex[:10]}"
    runs = [post_run(api, agent_name=agent, status="success") for _ in range(2)]
    result = cli_against(
        shared_server, "runs", "tail", "--agent-name", agent, "--interval", "0.2", "--timeout", "1"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, run in zip(lines, runs, strict=True):
        assert run["event_id"] in line
        assert agent in line
        assert "success" in line


def test_tail_keeps_retrying_while_the_server_is_away(start_server: StartServer) -> None:
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = post_run(client)
        process = start_tail(
            server, "--json", "-n", "1", "--interval", "0.2", "--max-runs", "1", "--timeout", "40"
        )
        try:
            assert json.loads(read_lines(process.stdout, 1)[0])["event_id"] == first["event_id"]
            server.stop()
            assert "warning: lost the server" in read_lines(process.stderr, 1)[0]
            server.start()
            later = post_run(client)
        finally:
            code, out, err = finish(process)
    assert code == 0, err
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == [later["event_id"]]
    assert "reconnected" in err
    assert "Traceback" not in err


def test_tail_stops_cleanly_on_ctrl_c(shared_server: ServerProcess, api: httpx.Client) -> None:
    run = post_run(api, agent_name=f"cli-tail-{uuid.uuid4().hex[:10]}")
    process = start_tail(
        shared_server, "--agent-name", run["agent_name"], "--json", "--timeout", str(TAIL_SECONDS)
    )
    try:
        assert json.loads(read_lines(process.stdout, 1)[0])["event_id"] == run["event_id"]
        process.send_signal(signal.SIGINT)
    finally:
        code, _, err = finish(process)
    assert code == 0
    assert "Traceback" not in err
    assert "Aborted" not in err


def test_tail_into_a_closed_pipe_exits_quietly(
    shared_server: ServerProcess, api: httpx.Client
) -> None:
    agent = f"cli-tail-{uuid.uuid4().hex[:10]}"
    for _ in range(3):
        post_run(api, agent_name=agent)
    process = start_tail(shared_server, "--agent-name", agent, "--timeout", str(TAIL_SECONDS))
    assert process.stdout is not None
    process.stdout.close()  # like `runs tail | head -0`
    code, _, err = finish(process)
    assert code == 0, err
    assert "Traceback" not in err
    assert "BrokenPipe" not in err
