"""Storage backends behind the :class:`~local_telemetry.storage.base.Store` protocol."""

from local_telemetry.storage.base import (
    AppendEvents,
    InsertRuns,
    RunFilter,
    Store,
    UpdateRun,
    WriteOp,
)

__all__ = ["AppendEvents", "InsertRuns", "RunFilter", "Store", "UpdateRun", "WriteOp"]
