"""Storage backends behind the :class:`~local_telemetry.storage.base.Store` protocol."""

from local_telemetry.storage.base import (
    AddQc,
    AppendEvents,
    InsertRuns,
    RunFilter,
    Store,
    UpdateRun,
    UpsertAgentRun,
    WriteOp,
)

__all__ = [
    "AddQc",
    "AppendEvents",
    "InsertRuns",
    "RunFilter",
    "Store",
    "UpdateRun",
    "UpsertAgentRun",
    "WriteOp",
]
