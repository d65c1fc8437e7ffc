"""The retention sweeper: old runs lose their raw payloads, older runs are deleted.

Two limits, in days before now, on a run's ``start_time``:

- ``TELEMETRY_RETENTION_PAYLOAD_DAYS``: ``error_details``, ``metrics_json``,
  ``context_json``, the run's events and the notes of its QC reviews are removed
  (:class:`~local_telemetry.storage.base.BlankPayloads`). Every KPI input stays, so KPIs
  of the past do not change.
- ``TELEMETRY_RETENTION_RUN_DAYS``: whole runs go, with their events and QC reviews
  (:class:`~local_telemetry.storage.base.DeleteRuns`); the run counts of ``/metrics``
  and ``/api/v1/metadata`` go down with them.

A sweep works in bounded batches so the single writer is never held long: a reader
thread finds up to ``batch_runs`` candidates (keyset scan on start_time), then one write
operation per batch acts on them, checking their age again inside its transaction. When
anything changed, free pages are given back to the file system in chunks of
``vacuum_pages`` (:class:`~local_telemetry.storage.base.ReclaimSpace`). Sweeps never
overlap: the periodic job and ``POST /api/v1/retention/sweep`` share one lock.

A sweep may be given its own ages instead of the configured limits (the endpoint's
body, ``local-telemetry purge``), and may be a dry run: then nothing is written and the
counts come from one read (``Store.retention_preview``) using the same predicates as
the write operations, so they equal what the sweep would report.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from local_telemetry.ingest import Read, Submit, submit_patiently
from local_telemetry.storage.base import (
    BlankPayloads,
    DeleteRuns,
    ReclaimSpace,
    RetentionCounts,
    RetentionPage,
    Store,
    WriteOp,
)
from local_telemetry.timestamps import to_stored

log = logging.getLogger(__name__)

BATCH_RUNS = 500
"""Runs examined per candidate read, and at most acted on per write operation."""
VACUUM_PAGES = 1000
"""Pages given back per write operation (4 MiB with SQLite's default page size)."""


@dataclass(frozen=True)
class RetentionResult:
    """What one sweep did, and the cutoffs it used (stored UTC form; ``None``: off)."""

    payload_cutoff: str | None
    run_cutoff: str | None
    dry_run: bool = False
    payload_blanked_runs: int = 0
    events_deleted: int = 0
    qc_notes_blanked: int = 0
    runs_deleted: int = 0
    qc_reviews_deleted: int = 0
    pages_freed: int = 0

    @property
    def changed(self) -> bool:
        """Whether the sweep changed any stored data."""
        return bool(
            self.payload_blanked_runs
            or self.events_deleted
            or self.qc_notes_blanked
            or self.runs_deleted
            or self.qc_reviews_deleted
        )

    def as_dict(self) -> dict[str, Any]:
        """The result as a JSON-able dict (the endpoint's answer)."""
        return asdict(self)

    def summary(self) -> str:
        """One log line."""
        return (
            f"retention {'dry run' if self.dry_run else 'sweep'}: "
            f"{self.payload_blanked_runs} runs blanked "
            f"(before {self.payload_cutoff}), {self.runs_deleted} runs deleted "
            f"(before {self.run_cutoff}), {self.events_deleted} events deleted, "
            f"{self.qc_notes_blanked} QC notes blanked, {self.qc_reviews_deleted} QC "
            f"reviews deleted, {self.pages_freed} pages freed"
        )


def cutoff(days: int | None, now: datetime) -> str | None:
    """The stored-form instant ``days`` before ``now`` (``None`` when ``days`` is)."""
    return None if days is None else to_stored(now - timedelta(days=days))


@dataclass(frozen=True)
class RetentionAges:
    """Ages for one sweep in place of the configured limits (``None``: that part off)."""

    payload_age: timedelta | None = None
    run_age: timedelta | None = None

    @property
    def enabled(self) -> bool:
        """Whether at least one of the two ages is set."""
        return self.payload_age is not None or self.run_age is not None


def _age_cutoff(age: timedelta | None, now: datetime) -> str | None:
    return None if age is None else to_stored(now - age)


class RetentionSweeper:
    """Runs retention sweeps of one store, one at a time."""

    def __init__(
        self,
        store: Store,
        read: Read,
        submit: Submit,
        *,
        payload_days: int | None,
        run_days: int | None,
        batch_runs: int = BATCH_RUNS,
        vacuum_pages: int = VACUUM_PAGES,
        on_runs_deleted: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.payload_days = payload_days
        self.run_days = run_days
        self.batch_runs = batch_runs
        self.vacuum_pages = vacuum_pages
        self._read = read
        self._submit = submit
        self._on_runs_deleted = on_runs_deleted
        self._lock = asyncio.Lock()  # binds to the running loop on first use

    @property
    def enabled(self) -> bool:
        """Whether at least one of the two limits is set."""
        return self.payload_days is not None or self.run_days is not None

    async def sweep(
        self,
        now: datetime | None = None,
        *,
        ages: RetentionAges | None = None,
        dry_run: bool = False,
    ) -> RetentionResult:
        """One sweep measured from ``now`` (default: now) with the configured limits, or
        with ``ages`` instead of both of them; waits for a sweep already running to
        finish first. ``dry_run``: change nothing, answer the counts the sweep would
        report (``pages_freed`` 0)."""
        async with self._lock:
            moment = now or datetime.now(UTC)
            if ages is None:
                result = RetentionResult(
                    payload_cutoff=cutoff(self.payload_days, moment),
                    run_cutoff=cutoff(self.run_days, moment),
                )
            else:
                result = RetentionResult(
                    payload_cutoff=_age_cutoff(ages.payload_age, moment),
                    run_cutoff=_age_cutoff(ages.run_age, moment),
                )
            if dry_run:
                return await self._preview(result)
            return await self._sweep(result)

    async def _preview(self, planned: RetentionResult) -> RetentionResult:
        """The counts a sweep with ``planned``'s cutoffs would report, from one read."""
        deleted: RetentionCounts
        blanked: RetentionCounts
        deleted, blanked = await self._read(
            self.store.retention_preview, planned.payload_cutoff, planned.run_cutoff
        )
        return replace(
            planned,
            dry_run=True,
            payload_blanked_runs=blanked.runs,
            events_deleted=deleted.events + blanked.events,
            qc_notes_blanked=blanked.qc,
            runs_deleted=deleted.runs,
            qc_reviews_deleted=deleted.qc,
        )

    async def step(self) -> None:
        """The periodic job's step: one sweep, logged when it changed anything."""
        result = await self.sweep()
        if result.changed:
            log.info("%s", result.summary())

    async def _sweep(self, result: RetentionResult) -> RetentionResult:
        if result.run_cutoff is not None:  # first: runs about to go need no blanking
            deleted = await self._batches(result.run_cutoff, payloads=False)
            result = replace(
                result,
                runs_deleted=deleted.runs,
                events_deleted=deleted.events,
                qc_reviews_deleted=deleted.qc,
            )
            if deleted.runs and self._on_runs_deleted is not None:
                self._on_runs_deleted()
        if result.payload_cutoff is not None:
            blanked = await self._batches(result.payload_cutoff, payloads=True)
            result = replace(
                result,
                payload_blanked_runs=blanked.runs,
                events_deleted=result.events_deleted + blanked.events,
                qc_notes_blanked=blanked.qc,
            )
        if result.changed:
            result = replace(result, pages_freed=await self._reclaim())
        return result

    async def _batches(self, started_before: str, *, payloads: bool) -> RetentionCounts:
        """Every batch of one limit; the summed counts of its write operations."""
        runs = events = qc = 0
        after: tuple[str, int] | None = None
        while True:
            page: RetentionPage = await self._read(
                self.store.retention_candidates,
                started_before,
                after,
                self.batch_runs,
                payloads,
            )
            if page.event_ids:
                op = (BlankPayloads if payloads else DeleteRuns)(page.event_ids, started_before)
                counts: RetentionCounts = await self._write(op)
                runs, events, qc = runs + counts.runs, events + counts.events, qc + counts.qc
            if page.after is None:
                return RetentionCounts(runs=runs, events=events, qc=qc)
            after = page.after

    async def _reclaim(self) -> int:
        """Give free pages back in chunks until none are left; how many in all."""
        freed = 0
        while True:
            pages: int = await self._write(ReclaimSpace(self.vacuum_pages))
            freed += pages
            if pages < self.vacuum_pages:
                return freed

    async def _write(self, op: WriteOp) -> Any:
        return await submit_patiently(self._submit, op)
