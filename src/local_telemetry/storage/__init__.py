"""Storage backends behind the :class:`~local_telemetry.storage.base.Store` protocol."""

from local_telemetry.storage.base import (
    InsertRuns,
    RunFilter,
    Store,
    UpdateRun,
    WriteOp,
)

__all__ = ["InsertRuns", "RunFilter", "Store", "UpdateRun", "WriteOp"]
