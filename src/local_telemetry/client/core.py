"""The core both clients share: configuration, run creation, enqueueing, error guard.

``TelemetryClient`` and ``AsyncTelemetryClient`` are thin faces over one
:class:`ClientCore`; run handles only enqueue into its :class:`Delivery`, so the async
client never blocks the event loop and the sync client never waits for the network.
"""

from __future__ import annotations

import atexit
import logging
import os
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from local_telemetry.client.delivery import (
    Delivery,
    DeliveryOptions,
    ErrorHook,
    Item,
    SpoolLike,
)
from local_telemetry.client.git import detect_git
from local_telemetry.client.runs import Run, utc_now
from local_telemetry.client.spool import Spool, default_spool_root

log = logging.getLogger("local_telemetry")

DEFAULT_API_URL = "http://localhost:8765"
TRUE_WORDS = frozenset({"1", "true", "yes"})


def telemetry_disabled() -> bool:
    """Whether ``TELEMETRY_DISABLED`` (1/true/yes) turns every call into a no-op."""
    return os.environ.get("TELEMETRY_DISABLED", "").strip().lower() in TRUE_WORDS


def make_run_id(agent_name: str, started: datetime) -> str:
    """The guide's ``{timestamp}-{agent_name}-{suffix}`` run id."""
    return f"{started.strftime('%Y-%m-%dT%H:%M:%SZ')}-{agent_name}-{uuid.uuid4().hex[:8]}"


class ClientCore:
    """Configuration and delivery of one client (sync or async)."""

    def __init__(
        self,
        api_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 5.0,
        max_queue_size: int = 10_000,
        retry_deadline: float = 10.0,
        spool: bool = True,
        spool_dir: str | os.PathLike[str] | None = None,
        detect_git: bool = True,
        on_error: ErrorHook | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = (api_url or os.environ.get("TELEMETRY_API_URL") or DEFAULT_API_URL).rstrip(
            "/"
        )
        self.token = token if token is not None else os.environ.get("TELEMETRY_API_TOKEN")
        self.disabled = telemetry_disabled()
        self.detect_git = detect_git
        self._git_fields: dict[str, str] | None = None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}

        def make_http() -> httpx.Client:
            return httpx.Client(
                base_url=self.api_url, headers=headers, timeout=timeout, transport=transport
            )

        self.delivery = Delivery(
            make_http,
            DeliveryOptions(max_queue_size=max_queue_size, retry_deadline=retry_deadline),
            spool=None if (self.disabled or not spool) else _open_spool(spool_dir, self.api_url),
            on_error=on_error,
        )
        _close_at_exit(self)

    # ----- runs -----

    def start(self, agent_name: str, job_type: str, fields: dict[str, Any]) -> Run:
        """Enqueue a run start; return its handle."""
        started = datetime.now(UTC)
        body: dict[str, Any] = {
            "event_id": fields.pop("event_id", None) or str(uuid.uuid4()),
            "run_id": fields.pop("run_id", None) or make_run_id(agent_name, started),
            "agent_name": agent_name,
            "job_type": job_type,
            "start_time": fields.pop("start_time", None) or started.isoformat(),
            "status": fields.pop("status", "running"),
        }
        if self.detect_git:
            for key, value in self.git_fields().items():
                fields.setdefault(key, value)
        body.update(fields)
        run = Run(self, body["event_id"], body["run_id"])
        if not self.disabled:
            self.delivery.submit(Item("start", run.event_id, body))
        return run

    def git_fields(self) -> dict[str, str]:
        """``git_repo``/``git_branch``/``git_commit_hash`` of the working directory, once."""
        if self._git_fields is None:
            try:
                self._git_fields = detect_git()
            except Exception:  # git detection must never fail a run
                self._git_fields = {}
        return self._git_fields

    def enqueue_update(self, event_id: str, fields: dict[str, Any]) -> None:
        """Queue a PATCH of the run."""
        if not self.disabled:
            self.delivery.submit(Item("update", event_id, fields))

    def enqueue_event(self, event_id: str, event: dict[str, Any]) -> None:
        """Queue a run event (log line)."""
        if not self.disabled:
            self.delivery.submit(Item("events", event_id, [event]))

    def enqueue_commit(self, event_id: str, body: dict[str, Any]) -> None:
        """Queue a commit association."""
        if not self.disabled:
            self.delivery.submit(Item("commit", event_id, body))

    def enqueue_qc(
        self, event_id: str, score: int, notes: str | None, reviewer: str | None
    ) -> None:
        """Queue a quality review."""
        body: dict[str, Any] = {"score": score}
        if notes is not None:
            body["notes"] = notes
        if reviewer is not None:
            body["reviewer"] = reviewer
        if not self.disabled:
            self.delivery.submit(Item("qc", event_id, body))

    def enqueue_runs(self, runs: list[dict[str, Any]]) -> None:
        """Queue complete run records (bulk upload); each needs an ``event_id``."""
        if self.disabled:
            return
        for record in runs:
            body = dict(record)
            body.setdefault("event_id", str(uuid.uuid4()))
            body.setdefault("start_time", utc_now())
            if "run_id" not in body:
                body["run_id"] = make_run_id(
                    str(body.get("agent_name", "agent")), datetime.now(UTC)
                )
            self.delivery.submit(Item("start", body["event_id"], body))

    # ----- safety -----

    def guard(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``function``; log and report any exception instead of raising it."""
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            log.warning("telemetry call failed: %s", exc)
            if self.delivery.on_error is not None:
                try:
                    self.delivery.on_error(exc, None)
                except Exception:
                    log.exception("on_error callback failed")
            return None


def _open_spool(spool_dir: str | os.PathLike[str] | None, api_url: str) -> SpoolLike | None:
    root = Path(spool_dir) if spool_dir is not None else default_spool_root()
    try:
        spool: SpoolLike = Spool(root, api_url)
    except OSError as exc:
        log.warning("telemetry spool at %s unavailable: %s", root, exc)
        return None
    return spool


def _close_at_exit(core: ClientCore) -> None:
    reference = weakref.ref(core)

    def close() -> None:
        alive = reference()
        if alive is not None:
            alive.delivery.close(timeout=5.0)

    atexit.register(close)
