"""Closing stale runs: runs left ``running`` by agents that crashed or were killed.

A run is stale when its status is ``running`` and nothing has been heard from it (its
``updated_at``, else its ``created_at``) for longer than a given age. Closing it sets the
requested terminal status (``timeout`` unless told otherwise; ``failure`` and
``cancelled`` are allowed), an ``end_time`` at the last time it was heard from (never
before its start; an end it already has is kept) with ``duration_ms`` end minus start,
an explanatory ``error_summary`` when it has none, and stamps ``updated_at``. Agent runs
(``/api/v1/agent-runs``) live in the same table and are closed the same way; a closed
run counts in the KPIs like any run of its status (a ``timeout`` is not a success).

The work goes through the server's single writer in batches of :data:`BATCH_RUNS`
(:class:`~local_telemetry.storage.base.CloseStaleRuns`), each checking staleness again
inside its transaction, so a run updated meanwhile stays open and the writer is never
held long. ``POST /api/v1/maintenance/close-stale-runs`` and the periodic job
(``TELEMETRY_STALE_RUN_TIMEOUT``) share one :class:`StaleRunCloser` and its lock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from local_telemetry.ingest import Read, Submit, submit_patiently
from local_telemetry.storage.base import CloseStaleRuns, StaleRuns, Store, WriteOp
from local_telemetry.timestamps import to_stored

log = logging.getLogger(__name__)

BATCH_RUNS = 500
"""Runs closed at most per write operation."""
LISTED_RUNS = 1000
"""Runs listed at most in a result (all of them are counted)."""
MAX_INTERVAL_SECONDS = 300.0
"""The periodic job runs at least this often (more often for short timeouts)."""


@dataclass(frozen=True)
class StaleResult:
    """What one close did (or, for a dry run, would do); ``cutoff`` in stored UTC form.

    ``runs`` lists the first :data:`LISTED_RUNS` runs (``event_ids`` their ids), each
    with ``event_id``, ``agent_name``, ``job_type``, ``start_time`` and ``last_heard``.
    """

    cutoff: str
    status: str
    dry_run: bool
    closed: int = 0
    event_ids: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The result as a JSON-able dict (the endpoint's answer)."""
        return asdict(self)


def interval_seconds(timeout: timedelta) -> float:
    """How often the periodic job runs for ``timeout``: a quarter of it, at most every
    five minutes, so a run is closed at most a quarter timeout after it went stale."""
    return min(MAX_INTERVAL_SECONDS, timeout.total_seconds() / 4)


class StaleRunCloser:
    """Closes stale runs of one store through its writer, one close at a time."""

    def __init__(
        self,
        store: Store,
        read: Read,
        submit: Submit,
        *,
        timeout: timedelta | None = None,
        status: str = "timeout",
        batch_runs: int = BATCH_RUNS,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.status = status
        self.batch_runs = batch_runs
        self._read = read
        self._submit = submit
        self._lock = asyncio.Lock()  # binds to the running loop on first use

    async def close(
        self,
        older_than: timedelta,
        status: str,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> StaleResult:
        """Close (or with ``dry_run`` only find) the runs stale for ``older_than`` at
        ``now`` (default: now), giving them ``status``; waits for a close in progress."""
        async with self._lock:
            moment = now or datetime.now(UTC)
            cutoff = to_stored(moment - older_than)
            if dry_run:
                found: StaleRuns = await self._read(self.store.stale_runs, cutoff, LISTED_RUNS)
                return StaleResult(
                    cutoff=cutoff,
                    status=status,
                    dry_run=True,
                    closed=found.total,
                    event_ids=[run["event_id"] for run in found.runs],
                    runs=found.runs,
                )
            return await self._close(cutoff, status, to_stored(moment))

    async def step(self) -> None:
        """The periodic job's step: close the runs stale for the configured timeout, and
        log how many when there were any."""
        if self.timeout is None:
            return
        result = await self.close(self.timeout, self.status)
        if result.closed:
            log.info(
                "stale-run cleanup: closed %d runs as %s (no update since %s)",
                result.closed,
                result.status,
                result.cutoff,
            )

    async def _close(self, cutoff: str, status: str, now: str) -> StaleResult:
        """Batches until one closes fewer than a full batch (then none is left)."""
        closed = 0
        runs: list[dict[str, Any]] = []
        while True:
            op = CloseStaleRuns(cutoff=cutoff, status=status, now=now, limit=self.batch_runs)
            batch: list[dict[str, Any]] = await self._write(op)
            closed += len(batch)
            runs.extend(batch[: max(0, LISTED_RUNS - len(runs))])
            if len(batch) < self.batch_runs:
                return StaleResult(
                    cutoff=cutoff,
                    status=status,
                    dry_run=False,
                    closed=closed,
                    event_ids=[run["event_id"] for run in runs],
                    runs=runs,
                )

    async def _write(self, op: WriteOp) -> Any:
        return await submit_patiently(self._submit, op)
