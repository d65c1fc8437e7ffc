"""Retry rules against real HTTP answers from a scripted server (tests/client/flaky_app.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from local_telemetry.client import TelemetryClient
from local_telemetry.client.delivery import Item
from support import free_port

HERE = Path(__file__).resolve().parent


@pytest.fixture
def flaky() -> Iterator[Callable[[str], str]]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(script: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "flaky_app:app",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--log-level",
                "warning",
            ],
            cwd=HERE,
            env={**os.environ, "FLAKY_SCRIPT": script},
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{url}/requests", timeout=1)
                return url
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("flaky server did not start")

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def seen(url: str) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{url}/requests").json()["seen"]
    return counts


def test_server_errors_are_retried_until_success(flaky: Callable[[str], str]) -> None:
    url = flaky("500,503,502")
    with TelemetryClient(url, spool=False, detect_git=False, retry_deadline=30) as sdk:
        sdk.start_run("agent", "job")
        assert sdk.flush(30)
        stats = sdk.stats()
    assert stats["sent"] == 1
    assert stats["retried"] == 3
    assert seen(url)["POST"] == 4


def test_a_full_disk_507_is_retried_not_dropped(flaky: Callable[[str], str]) -> None:
    url = flaky("507:1,507:1")
    with TelemetryClient(url, spool=False, detect_git=False, retry_deadline=30) as sdk:
        sdk.start_run("agent", "job")
        assert sdk.flush(30)
        stats = sdk.stats()
    assert stats["sent"] == 1
    assert stats["dropped"] == 0
    assert seen(url)["POST"] == 3


def test_429_waits_for_retry_after(flaky: Callable[[str], str]) -> None:
    url = flaky("429:1")
    with TelemetryClient(url, spool=False, detect_git=False, retry_deadline=30) as sdk:
        began = time.monotonic()
        sdk.start_run("agent", "job")
        assert sdk.flush(30)
        waited = time.monotonic() - began
        stats = sdk.stats()
    assert (stats["sent"], stats["retried"]) == (1, 1)
    assert seen(url)["POST"] == 2
    assert waited >= 1.0  # Retry-After honoured (a lower bound, not a speed assertion)


@pytest.mark.parametrize("status", ["400", "401", "404", "422"])
def test_other_client_errors_are_rejected_without_retry(
    flaky: Callable[[str], str], status: str
) -> None:
    url = flaky(f"201,{status}")  # the run start succeeds, its PATCH is refused
    errors: list[tuple[BaseException, Item | None]] = []
    with TelemetryClient(
        url, spool=False, detect_git=False, on_error=lambda e, i: errors.append((e, i))
    ) as sdk:
        run = sdk.start_run("agent", "job")
        assert sdk.flush(30)  # the start first, so the end is a PATCH of its own
        run.end()
        assert sdk.flush(30)
        stats = sdk.stats()
    assert stats["rejected"] == 1
    assert stats["retried"] == 0
    assert seen(url)["PATCH"] == 1
    assert f"HTTP {status}" in str(errors[0][0])
    assert errors[0][1] is not None
    assert errors[0][1].kind == "update"


def test_retry_budget_spent_drops_without_spool(flaky: Callable[[str], str]) -> None:
    url = flaky(",".join(["503"] * 100))
    with TelemetryClient(url, spool=False, detect_git=False, retry_deadline=0.5) as sdk:
        sdk.start_run("agent", "job")
        sdk.flush(10)
        stats = sdk.stats()
    assert stats["sent"] == 0
    assert stats["dropped"] == 1
    assert stats["retried"] >= 1
