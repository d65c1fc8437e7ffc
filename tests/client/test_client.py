"""The SDK against a real server process: lifecycle, decorator, ordering, failures."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import httpx
import pytest

from local_telemetry.client import AsyncTelemetryClient, TelemetryClient
from local_telemetry.client.delivery import Item
from support import ServerProcess, free_port, stored_run


def agent() -> str:
    return f"sdk.{uuid.uuid4().hex[:10]}"


def test_block_success_records_start_progress_and_end(
    client: TelemetryClient, shared_server: ServerProcess
) -> None:
    with client.run(agent(), "processing", environment="prod", items_discovered=3) as run:
        run.update(items_succeeded=2)
        run.set_metrics(input_tokens=10)
        run.set_metrics(output_tokens=20)
        run.set_context(model="m1")
    assert client.flush(10)
    row = stored_run(shared_server, run.event_id)
    assert row["status"] == "success"
    assert row["environment"] == "prod"
    assert (row["items_discovered"], row["items_succeeded"]) == (3, 2)
    assert row["metrics_json"] == {"input_tokens": 10, "output_tokens": 20}
    assert row["context_json"] == {"model": "m1"}
    assert row["end_time"] is not None
    assert row["duration_ms"] >= 0
    assert row["run_id"].endswith(run.run_id[-8:])
    assert run.run_id.split("-")[0].isdigit()  # {timestamp}-{agent}-{suffix}
    assert client.stats()["rejected"] == 0


def test_block_failure_records_traceback_and_reraises(
    client: TelemetryClient, shared_server: ServerProcess
) -> None:
    with pytest.raises(ZeroDivisionError), client.run(agent(), "processing") as run:
        _ = 1 / 0
    assert client.flush(10)
    row = stored_run(shared_server, run.event_id)
    assert row["status"] == "failure"
    assert row["error_summary"] == "division by zero"
    assert "ZeroDivisionError" in row["error_details"]
    assert "Traceback" in row["error_details"]


@pytest.mark.parametrize("outcome", ["fail", "partial"])
def test_fail_and_partial_set_the_final_status(
    client: TelemetryClient, shared_server: ServerProcess, outcome: str
) -> None:
    with client.run(agent(), "processing") as run:
        if outcome == "fail":
            run.fail("upstream said no")
        else:
            run.partial("3 items failed", items_failed=3)
    assert client.flush(10)
    row = stored_run(shared_server, run.event_id)
    assert row["status"] == ("failure" if outcome == "fail" else "partial")
    assert row["error_summary"] in ("upstream said no", "3 items failed")


def test_decorator_tracks_sync_and_async_functions(
    client: TelemetryClient, shared_server: ServerProcess
) -> None:
    name = agent()

    @client.track(name, "sync-job")
    def double(x: int) -> int:
        return x * 2

    @client.track(name, "async-job")
    async def triple(x: int) -> int:
        await asyncio.sleep(0)
        return x * 3

    @client.track(name, "failing-job")
    def broken() -> None:
        raise RuntimeError("nope")

    assert double(4) == 8
    assert asyncio.run(triple(4)) == 12
    with pytest.raises(RuntimeError):
        broken()
    assert client.flush(10)
    runs = httpx.get(f"{shared_server.url}/api/v1/runs", params={"agent_name": name}).json()
    by_job = {r["job_type"]: r["status"] for r in runs}
    assert by_job == {"sync-job": "success", "async-job": "success", "failing-job": "failure"}


def test_start_and_end_run_by_handle_and_by_event_id(
    client: TelemetryClient, shared_server: ServerProcess
) -> None:
    first = client.start_run(agent(), "manual", event_id=f"sdk-{uuid.uuid4()}")
    second = client.start_run(agent(), "manual")
    client.end_run(first, status="partial", items_failed=1)
    client.end_run(second.event_id, status="cancelled")
    assert client.flush(10)
    assert stored_run(shared_server, first.event_id)["status"] == "partial"
    assert stored_run(shared_server, first.event_id)["items_failed"] == 1
    assert stored_run(shared_server, second.event_id)["status"] == "cancelled"


def test_associate_commit_is_delivered(
    client: TelemetryClient, shared_server: ServerProcess
) -> None:
    with client.run(agent(), "codegen") as run:
        run.associate_commit("ABCDEF1234", source="llm", author="Bot <b@x>")
    assert client.flush(10)
    row = stored_run(shared_server, run.event_id)
    assert (row["git_commit_hash"], row["git_commit_source"]) == ("abcdef1234", "llm")
    assert row["git_commit_author"] == "Bot <b@x>"


def test_log_batch_uploads_and_reports_rejected_items(shared_server: ServerProcess) -> None:
    errors: list[tuple[BaseException, Item | None]] = []
    name = agent()
    with TelemetryClient(
        shared_server.url,
        spool=False,
        detect_git=False,
        on_error=lambda e, i: errors.append((e, i)),
    ) as sdk:
        good = [
            {
                "event_id": str(uuid.uuid4()),
                "agent_name": name,
                "job_type": "bulk",
                "status": "success",
            }
            for _ in range(25)
        ]
        bad = {
            "event_id": str(uuid.uuid4()),
            "agent_name": name,
            "job_type": "bulk",
            "status": "bogus",
        }
        sdk.log_batch([*good, bad])
        assert sdk.flush(10)
        stats = sdk.stats()
    assert stats["sent"] == 25
    assert stats["rejected"] == 1
    assert len(errors) == 1
    assert errors[0][1] is not None
    assert errors[0][1].event_id == bad["event_id"]
    assert "Status must be one of" in str(errors[0][0])
    runs = httpx.get(f"{shared_server.url}/api/v1/runs", params={"agent_name": name}).json()
    assert len(runs) == 25


def test_updates_of_many_runs_arrive_in_order(
    client: TelemetryClient, shared_server: ServerProcess
) -> None:
    name = agent()
    handles = []
    for _ in range(100):
        run = client.start_run(name, "ordered")
        for value in range(1, 6):
            run.update(items_succeeded=value)
        run.end()
        handles.append(run)
    assert client.flush(30)
    runs = httpx.get(
        f"{shared_server.url}/api/v1/runs", params={"agent_name": name, "limit": 1000}
    ).json()
    assert len(runs) == 100
    assert {(r["items_succeeded"], r["status"]) for r in runs} == {(5, "success")}
    assert client.stats()["rejected"] == 0


def test_async_client_blocks_nothing_and_delivers(shared_server: ServerProcess) -> None:
    async def scenario() -> str:
        async with AsyncTelemetryClient(shared_server.url, spool=False, detect_git=False) as sdk:
            async with sdk.run(agent(), "async") as run:
                run.update(items_succeeded=7)
            assert await sdk.flush(10)
            return run.event_id

    event_id = asyncio.run(scenario())
    row = stored_run(shared_server, event_id)
    assert (row["status"], row["items_succeeded"]) == ("success", 7)


def test_unreachable_server_never_raises_and_counts_drops() -> None:
    errors: list[BaseException] = []
    sdk = TelemetryClient(
        f"http://127.0.0.1:{free_port()}",
        spool=False,
        detect_git=False,
        retry_deadline=0.3,
        on_error=lambda e, i: errors.append(e),
    )
    with sdk.run(agent(), "offline") as run:
        run.update(items_succeeded=1)
        run.log("still fine")
    sdk.flush(5)
    sdk.close(1)
    stats = sdk.stats()
    assert stats["sent"] == 0
    assert stats["dropped"] >= 1
    assert stats["retried"] >= 1
    assert errors


def test_full_queue_drops_events_first_and_counts_them() -> None:
    sdk = TelemetryClient(
        f"http://127.0.0.1:{free_port()}",
        spool=False,
        detect_git=False,
        retry_deadline=0.2,
        max_queue_size=10,
    )
    run = sdk.start_run(agent(), "flood")
    for n in range(500):
        run.log(f"line {n}")
    dropped = sdk.stats()["dropped"]
    sdk.close(1)
    assert dropped >= 480  # 500 events into a 10-item queue while the sender is stuck


def test_disabled_client_sends_nothing(shared_server: ServerProcess) -> None:
    name = agent()
    script = (
        "from local_telemetry.client import TelemetryClient\n"
        f"c = TelemetryClient({shared_server.url!r}, spool=False)\n"
        f"with c.run({name!r}, 'job') as r:\n"
        "    r.update(items_succeeded=1)\n"
        "print(c.flush(5), c.stats())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "TELEMETRY_DISABLED": "yes"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'sent': 0" in out
    runs = httpx.get(f"{shared_server.url}/api/v1/runs", params={"agent_name": name}).json()
    assert runs == []


def test_importing_the_sdk_loads_no_server_dependency() -> None:
    script = (
        "import sys\n"
        "import local_telemetry, local_telemetry.client\n"
        # rich is left out: httpx itself imports it when installed (for its own CLI).
        "server = {'fastapi', 'uvicorn', 'starlette', 'pydantic', 'pydantic_settings',"
        " 'orjson', 'sqlite3', 'typer', 'anyio', 'local_telemetry.api',"
        " 'local_telemetry.storage', 'local_telemetry.config', 'local_telemetry.ingest'}\n"
        "def loaded(m):\n"
        "    return m.split('.')[0] in server or m.rsplit('.', 1)[0] in server or m in server\n"
        "print(sorted(m for m in sys.modules if loaded(m)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_delivers_its_own_runs(
    client: TelemetryClient, shared_server: ServerProcess
) -> None:
    name = agent()
    with client.run(name, "parent"):
        pass
    assert client.flush(10)
    pid = os.fork()
    if pid == 0:  # child: a fresh sender, its own runs
        try:
            with client.run(name, "child"):
                pass
            ok = client.flush(10)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    runs = httpx.get(f"{shared_server.url}/api/v1/runs", params={"agent_name": name}).json()
    assert sorted(r["job_type"] for r in runs) == ["child", "parent"]


def test_coalesce_merges_updates_into_the_pending_start_only_when_adjacent() -> None:
    from local_telemetry.client.delivery import coalesce

    items = [
        Item("start", "a", {"event_id": "a", "status": "running"}),
        Item("update", "a", {"items_succeeded": 1}),
        Item("start", "b", {"event_id": "b"}),
        Item("events", "a", [{"message": "x"}]),
        Item("update", "a", {"status": "success"}),
        Item("update", "a", {"duration_ms": 5}),
        Item("update", "b", {"status": "failure"}),
    ]
    merged = coalesce(items)
    assert [(i.kind, i.event_id, i.weight) for i in merged] == [
        ("start", "a", 2),
        ("start", "b", 2),
        ("events", "a", 1),
        ("update", "a", 2),
    ]
    assert merged[0].body == {"event_id": "a", "status": "running", "items_succeeded": 1}
    assert merged[1].body == {"event_id": "b", "status": "failure"}
    assert merged[3].body == {"status": "success", "duration_ms": 5}


def test_qc_before_the_server_has_quality_scores_reports_through_on_error(
    shared_server: ServerProcess,
) -> None:
    # The server now stores quality scores: the review arrives and nothing is rejected.
    errors: list[tuple[BaseException, Item | None]] = []
    with TelemetryClient(
        shared_server.url,
        spool=False,
        detect_git=False,
        on_error=lambda e, i: errors.append((e, i)),
    ) as sdk:
        run = sdk.start_run(agent(), "reviewed")
        assert sdk.flush(10)
        sdk.qc(run.event_id, 4, notes="good")  # returns; never raises
        assert sdk.flush(10)
        stats = sdk.stats()
    assert stats["rejected"] == 0
    assert errors == []
    response = httpx.get(f"{shared_server.url}/api/v1/runs/{run.event_id}/qc")
    assert response.status_code == 200
    [review] = response.json()
    assert (review["score"], review["notes"], review["reviewer"]) == (4, "good", None)


def test_qc_of_an_unknown_run_is_rejected_as_not_found(shared_server: ServerProcess) -> None:
    errors: list[tuple[BaseException, Item | None]] = []
    with TelemetryClient(
        shared_server.url,
        spool=False,
        detect_git=False,
        on_error=lambda e, i: errors.append((e, i)),
    ) as sdk:
        sdk.qc(str(uuid.uuid4()), 3)
        assert sdk.flush(10)
    [(error, item)] = errors
    assert item is not None
    assert item.kind == "qc"
    assert "Run not found" in str(error)
    assert "not available" not in str(error)


def test_runs_left_open_at_exit_are_delivered_by_the_atexit_hook(
    shared_server: ServerProcess,
) -> None:
    name = agent()
    script = (
        "from local_telemetry import TelemetryClient\n"
        f"c = TelemetryClient({shared_server.url!r}, spool=False, detect_git=False)\n"
        f"with c.run({name!r}, 'exiting') as r:\n"
        "    r.update(items_succeeded=3)\n"
        "# no flush, no close: the interpreter exits right away\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    runs = httpx.get(f"{shared_server.url}/api/v1/runs", params={"agent_name": name}).json()
    assert [(r["status"], r["items_succeeded"]) for r in runs] == [("success", 3)]


def test_run_log_events_are_stored_in_order(
    client: TelemetryClient, shared_server: ServerProcess
) -> None:
    with client.run(agent(), "logging") as run:
        run.log("first", rows=1)
        run.log("second", level="warning")
    assert client.flush(10)
    events = httpx.get(f"{shared_server.url}/api/v1/runs/{run.event_id}/events").json()
    assert [(e["message"], e["level"]) for e in events] == [
        ("first", "info"),
        ("second", "warning"),
    ]
    assert events[0]["data"] == {"rows": 1}
