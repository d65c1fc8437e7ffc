"""Track every call of a function, sync or async, with ``@client.track``."""

import asyncio

from local_telemetry.client import TelemetryClient

client = TelemetryClient()


@client.track("example.decorated_agent", "etl")
def transform(rows: list[int]) -> list[int]:
    return [row * 2 for row in rows]


@client.track("example.decorated_agent", "fetch")
async def fetch() -> list[int]:
    await asyncio.sleep(0)
    return [1, 2, 3]


rows = asyncio.run(fetch())
print(transform(rows))
print(client.flush(timeout=10))
