"""What every handler needs, kept on ``app.state`` by ``create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from anyio import CapacityLimiter, to_thread
from fastapi import Request

from local_telemetry.api.background import BackgroundJobs
from local_telemetry.api.metadata_cache import MetadataCache
from local_telemetry.config import GitPlatform, Settings
from local_telemetry.ingest import GroupCommitWriter
from local_telemetry.observability import IngestMetrics
from local_telemetry.pii import Scrubber
from local_telemetry.storage.base import Store, StoreInfo

if TYPE_CHECKING:
    from local_telemetry.api.alerts import AlertEngine
    from local_telemetry.retention import RetentionSweeper

T = TypeVar("T")

# Few reader threads: SQLite hands the GIL back and forth on every row it steps, so many
# concurrent reader threads convoy on the GIL (16 readers measured 5x slower than 4).
READER_THREADS = 4


@dataclass
class AppState:
    """The running application's parts."""

    settings: Settings
    store: Store
    writer: GroupCommitWriter
    metadata: MetadataCache
    git_hosts: dict[str, GitPlatform]
    scrubber: Scrubber | None = None  # None: PII scrubbing off (no call on ingest)
    store_info: StoreInfo | None = None  # read once at start-up: modes do not change
    jobs: BackgroundJobs = field(default_factory=BackgroundJobs)  # periodic server jobs
    alert_engine: AlertEngine | None = None  # set by api.alerts.install
    retention: RetentionSweeper | None = None  # shared by the sweep job and endpoint
    # Ingest counters and latencies of this app (its own Prometheus registry).
    metrics: IngestMetrics = field(default_factory=IngestMetrics)
    _read_limiter: CapacityLimiter | None = field(default=None, repr=False)

    async def info(self) -> StoreInfo:
        """The store's facts, as read at start-up (or now, before start-up ended)."""
        if self.store_info is None:
            self.store_info = await self.read(self.store.info)
        return self.store_info

    async def read(self, function: Callable[..., T], *args: object) -> T:
        """Run a blocking read (store query) on one of the few reader threads."""
        if self._read_limiter is None:  # created in the event loop, on first use
            self._read_limiter = CapacityLimiter(READER_THREADS)
        return await to_thread.run_sync(function, *args, limiter=self._read_limiter)


def state(request: Request) -> AppState:
    """The :class:`AppState` of the app serving ``request``."""
    app_state: AppState = request.app.state.local_telemetry
    return app_state
