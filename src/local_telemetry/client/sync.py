"""``TelemetryClient``: the synchronous face of the SDK."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from local_telemetry.client.core import ClientCore
from local_telemetry.client.runs import Run, utc_now

P = ParamSpec("P")
R = TypeVar("R")


class _ClientBase:
    """What both clients offer; every method enqueues and never raises."""

    def __init__(
        self, api_url: str | None = None, token: str | None = None, **options: Any
    ) -> None:
        self._core = ClientCore(api_url, token, **options)

    @property
    def api_url(self) -> str:
        """The server the client sends to."""
        return self._core.api_url

    def run(self, agent_name: str, job_type: str, **fields: Any) -> Run:
        """Start a run and use it as a context manager (``with`` or ``async with``).

        >>> with client.run("my-agent", "processing", environment="prod") as run:  # doctest: +SKIP
        ...     run.update(items_succeeded=10)
        """
        return self.start_run(agent_name, job_type, **fields)

    def start_run(self, agent_name: str, job_type: str, **fields: Any) -> Run:
        """Start a run without a block; finish it with :meth:`end_run` or ``run.end()``."""
        run: Run | None = self._core.guard(self._core.start, agent_name, job_type, dict(fields))
        if run is None:  # never fail the caller: hand back a run that only records locally
            run = Run(self._core, str(fields.get("event_id", "")), str(fields.get("run_id", "")))
        return run

    def end_run(self, run: Run | str, status: str = "success", **fields: Any) -> None:
        """Finish a run given its handle or ``event_id``."""
        if isinstance(run, Run):
            self._core.guard(run.end, status, **fields)
            return
        final = {"status": status, "end_time": fields.pop("end_time", None), **fields}
        final = {k: v for k, v in final.items() if v is not None}
        final.setdefault("end_time", utc_now())
        self._core.guard(self._core.enqueue_update, run, final)

    def log_batch(self, runs: list[dict[str, Any]]) -> None:
        """Upload complete run records in bulk (through the batch endpoint)."""
        self._core.guard(self._core.enqueue_runs, list(runs))

    def qc(
        self, event_id: str, score: int, notes: str | None = None, reviewer: str | None = None
    ) -> None:
        """Record a quality review (1-5) of a run."""
        self._core.guard(self._core.enqueue_qc, event_id, score, notes, reviewer)

    def stats(self) -> dict[str, int]:
        """Items sent, retried, spooled, dropped and rejected so far."""
        return self._core.delivery.stats.as_dict()

    def track(
        self, agent_name: str, job_type: str, **fields: Any
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a function (sync or ``async def``) so that each call is a run."""

        def decorate(function: Callable[P, R]) -> Callable[P, R]:
            if inspect.iscoroutinefunction(function):
                coroutine_function: Callable[P, Awaitable[Any]] = function

                @functools.wraps(function)
                async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                    async with self.run(agent_name, job_type, **fields):
                        return await coroutine_function(*args, **kwargs)

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(function)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                with self.run(agent_name, job_type, **fields):
                    return function(*args, **kwargs)

            return wrapper

        return decorate


class TelemetryClient(_ClientBase):
    """Synchronous client; ``flush``/``close`` block up to ``timeout`` seconds.

    >>> client = TelemetryClient()  # TELEMETRY_API_URL or http://localhost:8765  # doctest: +SKIP
    """

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued is delivered (or spooled); ``False`` on timeout."""
        result = self._core.guard(self._core.delivery.flush, timeout)
        return bool(result)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush and stop the sender; what cannot be delivered goes to the spool."""
        result = self._core.guard(self._core.delivery.close, timeout)
        return bool(result)

    def __enter__(self) -> TelemetryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
