"""Periodic jobs the server runs beside the API: alert evaluation, retention, exports.

Each job is an ``async`` step called every ``interval`` seconds by one asyncio task of the
server's event loop, from start-up until shutdown. A step does its blocking work on
reader threads (``AppState.read``) or through the writer (``writer.submit``), so it never
stalls request handling; steps of one job never overlap (the next wait starts after a
step returned). A failing step is logged and the job carries on at its next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[object]]


@dataclass
class PeriodicJob:
    """``step`` run every ``interval`` seconds (first run after ``first_delay``)."""

    name: str
    interval: float
    step: Step
    first_delay: float = 0.0
    runs: int = 0
    failures: int = 0


@dataclass
class BackgroundJobs:
    """The server's periodic jobs, started and stopped with the application."""

    jobs: list[PeriodicJob] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Await ``hook()`` at shutdown, after every job has stopped."""
        self._on_stop.append(hook)

    def add(self, job: PeriodicJob) -> None:
        """Register ``job`` (jobs with an interval of 0 are disabled and never run)."""
        if job.interval > 0:
            self.jobs.append(job)

    def start(self) -> None:
        """Start one task per job in the running event loop."""
        for job in self.jobs:
            self._tasks.append(asyncio.create_task(_loop(job), name=f"job:{job.name}"))

    async def stop(self) -> None:
        """Cancel every job's task and wait until each has ended."""
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        for hook in self._on_stop:
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed")


def leader_only(is_leader: Callable[[], Awaitable[bool]], step: Step) -> Step:
    """``step`` that runs only while ``is_leader()`` says this process leads its role
    (``Store.lead``): with several API processes on one database, one runs the job."""

    async def run() -> object:
        if await is_leader():
            return await step()
        return None

    return run


async def cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _loop(job: PeriodicJob) -> None:
    await asyncio.sleep(job.first_delay)
    while True:
        try:
            await job.step()
        except asyncio.CancelledError:
            raise
        except Exception:
            job.failures += 1
            log.exception("background job %s failed", job.name)
        job.runs += 1
        await asyncio.sleep(job.interval)
