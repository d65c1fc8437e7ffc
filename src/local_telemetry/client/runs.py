"""The run handle: what ``client.run(...)``/``client.start_run(...)`` give back.

Every method only enqueues (it never waits for the network) and never raises into the
caller. The handle is also a context manager, sync and async, that ends the run:
``success`` on a normal exit, ``failure`` with the traceback on an exception (which is
re-raised), or the status set by :meth:`Run.fail`/:meth:`Run.partial`.
"""

from __future__ import annotations

import time
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local_telemetry.client.core import ClientCore


def utc_now() -> str:
    """The current instant as ISO 8601 with timezone, as the API expects."""
    return datetime.now(UTC).isoformat()


class Run:
    """One tracked run.

    >>> with client.run("my_product.my_agent", "data_processing") as run:  # doctest: +SKIP
    ...     run.update(items_discovered=100)
    ...     run.log("fetched", level="info", rows=100)
    ...     run.set_metrics(input_tokens=1500)
    """

    def __init__(self, core: ClientCore, event_id: str, run_id: str) -> None:
        self._core = core
        self.event_id = event_id
        """The run's idempotency key (generated unless given)."""
        self.run_id = run_id
        """The application-level run id (``{timestamp}-{agent}-{suffix}`` unless given)."""
        self._started = time.monotonic()
        self._metrics: dict[str, Any] = {}
        self._context: dict[str, Any] = {}
        self._final: dict[str, Any] = {}
        self.ended = False

    # ----- progress -----

    def update(self, **fields: Any) -> None:
        """PATCH any run fields (``items_succeeded=...``, ``output_summary=...``)."""
        if fields:
            self._core.enqueue_update(self.event_id, fields)

    def set_metrics(self, **values: Any) -> None:
        """Merge ``values`` into the run's ``metrics_json``."""
        self._metrics.update(values)
        self.update(metrics_json=dict(self._metrics))

    def set_context(self, **values: Any) -> None:
        """Merge ``values`` into the run's ``context_json``."""
        self._context.update(values)
        self.update(context_json=dict(self._context))

    def log(self, message: str, level: str = "info", **data: Any) -> None:
        """Record an event on the run (``GET /api/v1/runs/{event_id}/events`` lists them)."""
        event: dict[str, Any] = {"message": str(message), "level": level, "timestamp": utc_now()}
        if data:
            event["data"] = data
        self._core.enqueue_event(self.event_id, event)

    def associate_commit(
        self,
        commit_hash: str,
        source: str = "llm",
        author: str | None = None,
        timestamp: str | None = None,
    ) -> None:
        """Link a git commit (``source``: ``manual``, ``llm`` or ``ci``)."""
        body: dict[str, Any] = {"commit_hash": commit_hash, "commit_source": source}
        if author is not None:
            body["commit_author"] = author
        if timestamp is not None:
            body["commit_timestamp"] = timestamp
        self._core.enqueue_commit(self.event_id, body)

    def qc(self, score: int, notes: str | None = None, reviewer: str | None = None) -> None:
        """Record a quality review (1-5) of this run."""
        self._core.enqueue_qc(self.event_id, score, notes, reviewer)

    # ----- outcome -----

    def fail(self, summary: str, details: str | None = None) -> None:
        """End as ``failure`` when the block exits (or now, via :meth:`end`)."""
        self._final = {"status": "failure", "error_summary": summary}
        if details is not None:
            self._final["error_details"] = details

    def partial(self, summary: str | None = None, **fields: Any) -> None:
        """End as ``partial`` when the block exits."""
        self._final = {"status": "partial", **fields}
        if summary is not None:
            self._final["error_summary"] = summary

    def end(self, status: str | None = None, **fields: Any) -> None:
        """Finish the run: PATCH status, ``end_time`` and ``duration_ms`` (once)."""
        if self.ended:
            return
        self.ended = True
        final: dict[str, Any] = {"status": "success", **self._final}
        if status is not None:
            final["status"] = status
        final.setdefault("end_time", utc_now())
        final.setdefault("duration_ms", int((time.monotonic() - self._started) * 1000))
        final.update(fields)
        self._core.enqueue_update(self.event_id, final)

    def _end_with(self, exc: BaseException | None) -> None:
        if exc is None:
            self.end()
            return
        summary = str(exc) or type(exc).__name__
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.end("failure", error_summary=summary[:2000], error_details=details)

    # ----- context manager (sync and async) -----

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._core.guard(self._end_with, exc)

    async def __aenter__(self) -> Run:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._core.guard(self._end_with, exc)
