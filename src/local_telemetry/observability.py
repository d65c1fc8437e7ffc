"""Counters and histograms the request path updates, in one registry per application.

``GET /metrics/prometheus`` (``api/prometheus.py``) exposes this registry. Every app owns
its own :class:`~prometheus_client.CollectorRegistry` (never the process-wide default),
so several apps in one process (tests) keep separate counts. Label children are
resolved once here: the create path only increments a counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from local_telemetry.ingest import StorageUnavailable, WriterBusy, WriterStopped

REJECTION_REASONS = ("validation", "too_large", "unsupported_media_type", "busy", "storage")
"""Why an ingest request was refused (the ``reason`` label)."""

_REASON_OF_STATUS = {413: "too_large", 415: "unsupported_media_type", 503: "busy"}

# Runs per batch request and writes per commit group: powers of two up to the limits
# (max_batch_items, max_commit_group) operators are likely to configure.
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# Request latency: 1 ms (a fast-path create) to 10 s (a large export).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def rejection_reason(exc: BaseException) -> str | None:
    """The ``reason`` label of an ingest request that failed with ``exc``; ``None`` when
    the failure is not a refusal (a client that went away, a server bug)."""
    # An HTTP error (``api.http.ApiError``), recognized by its status code: importing the
    # api package here would be circular (api/deps.py holds these metrics).
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        reason = _REASON_OF_STATUS.get(status)
        if reason is not None:
            return reason
        return "validation" if 400 <= status < 500 else None
    if isinstance(exc, WriterBusy | WriterStopped):
        return "busy"
    if isinstance(exc, StorageUnavailable):
        return "storage"
    return None


class IngestMetrics:
    """The ingest counters, batch and commit-group sizes, and request latencies."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.runs_created = Counter(
            "local_telemetry_runs_created", "Runs stored (single and batch).", registry=registry
        )
        self.runs_duplicate = Counter(
            "local_telemetry_runs_duplicate",
            "Runs received again with a known event_id (answered duplicate, not stored).",
            registry=registry,
        )
        rejected = Counter(
            "local_telemetry_ingest_rejected",
            "Run ingest requests refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self._rejected = {reason: rejected.labels(reason) for reason in REJECTION_REASONS}
        self.batch_size = Histogram(
            "local_telemetry_batch_size_runs",
            "Runs per POST /api/v1/runs/batch request.",
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.commit_group_size = Histogram(
            "local_telemetry_commit_group_size_writes",
            "Writes committed together in one writer transaction.",
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.request_duration = Histogram(
            "local_telemetry_http_request_duration_seconds",
            "HTTP request latency by route template, method and status class.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._latency_children: dict[tuple[str, str, str], Any] = {}

    def rejected(self, exc: BaseException) -> None:
        """Count an ingest request that failed with ``exc``, if it was a refusal."""
        reason = rejection_reason(exc)
        if reason is not None:
            self._rejected[reason].inc()

    def stored(self, created: int, duplicates: int) -> None:
        """Count the outcome of one create (or batch) request."""
        if created:
            self.runs_created.inc(created)
        if duplicates:
            self.runs_duplicate.inc(duplicates)

    def observe_commit(self, ops: Sequence[Any], results: Sequence[Any]) -> None:
        """Writer commit listener: record the size of the group just committed."""
        self.commit_group_size.observe(len(ops))

    def observe_request(self, route: str, method: str, status: str, seconds: float) -> None:
        """Record one request's latency (labels are bounded by the caller)."""
        key = (route, method, status)
        child = self._latency_children.get(key)
        if child is None:  # labels() takes a lock and builds a key: once per label set
            child = self._latency_children[key] = self.request_duration.labels(*key)
        child.observe(seconds)
