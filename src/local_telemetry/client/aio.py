"""``AsyncTelemetryClient``: the asyncio face of the SDK (same core as the sync one)."""

from __future__ import annotations

import asyncio

from local_telemetry.client.sync import _ClientBase


class AsyncTelemetryClient(_ClientBase):
    """Client for asyncio code: run methods only enqueue; ``flush``/``close`` are awaited
    without blocking the event loop (the sender runs on its own thread)."""

    async def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued is delivered (or spooled); ``False`` on timeout."""
        result = await asyncio.to_thread(self._core.guard, self._core.delivery.flush, timeout)
        return bool(result)

    async def close(self, timeout: float | None = 10.0) -> bool:
        """Flush and stop the sender; what cannot be delivered goes to the spool."""
        result = await asyncio.to_thread(self._core.guard, self._core.delivery.close, timeout)
        return bool(result)

    async def __aenter__(self) -> AsyncTelemetryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
