"""The SDK shortens oversized error text so the run still reaches a real server."""

from __future__ import annotations

import uuid

import pytest

from local_telemetry.client import TelemetryClient
from local_telemetry.client.truncation import FIELD_LIMITS, truncate_text
from local_telemetry.schemas import MAX_ERROR_DETAILS_BYTES, MAX_ERROR_SUMMARY_BYTES
from support import ServerProcess, stored_run


def test_sdk_limits_match_the_server() -> None:
    assert FIELD_LIMITS == {
        "error_summary": MAX_ERROR_SUMMARY_BYTES,
        "error_details": MAX_ERROR_DETAILS_BYTES,
    }


def test_a_huge_traceback_is_truncated_with_a_marker_and_the_run_stored(
    client: TelemetryClient, shared_server: ServerProcess
) -> None:
    details = "Traceback (most recent call last):\n" + "  frame é😀\n" * 200_000  # ~3 MB
    summary = "boom " * 2000  # 10 KB
    run = client.start_run(f"sdk-trunc-{uuid.uuid4().hex[:8]}", "job")
    run.fail(summary, details)
    run.end()
    assert client.flush(20)
    row = stored_run(shared_server, run.event_id)
    assert row["status"] == "failure"
    assert client.stats()["rejected"] == 0
    assert client.stats()["truncated"] == 2
    for name, original in (("error_details", details), ("error_summary", summary)):
        text = row[name]
        assert len(text.encode()) <= FIELD_LIMITS[name]
        head, marker = text.rsplit("\n… [truncated ", 1)
        assert original.startswith(head)
        dropped = int(marker.removesuffix(" bytes by local-telemetry SDK]"))
        assert dropped == len(original.encode()) - len(head.encode())


def test_fitting_values_are_sent_untouched(
    client: TelemetryClient, shared_server: ServerProcess
) -> None:
    details = "x" * MAX_ERROR_DETAILS_BYTES
    run = client.start_run(f"sdk-trunc-{uuid.uuid4().hex[:8]}", "job", error_details=details)
    run.end("success")
    assert client.flush(20)
    assert stored_run(shared_server, run.event_id)["error_details"] == details
    assert client.stats()["truncated"] == 0


@pytest.mark.parametrize("limit", [100, 4096, 256 * 1024])
def test_truncation_never_splits_a_character_and_never_exceeds(limit: int) -> None:
    for value in ("é" * 5000, "😀" * 5000, "a" + "😀" * 5000, "\udc80" * 5000, "x" * 300_000):
        size = len(value.encode("utf-8", "surrogatepass"))
        short = truncate_text(value, limit)
        if size <= limit:
            assert short is None
        else:
            assert short is not None
            assert len(short.encode("utf-8", "surrogatepass")) <= limit
            assert short.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
