"""The Local Telemetry SDK: record agent and job runs without ever breaking the caller.

Imports only the standard library and ``httpx``. ``TelemetryClient`` (sync) and
``AsyncTelemetryClient`` share one delivery core: calls enqueue and return at once, a
background sender delivers with retries, and a disk spool keeps what the server could
not take yet.

>>> from local_telemetry.client import TelemetryClient  # doctest: +SKIP
>>> client = TelemetryClient()  # TELEMETRY_API_URL, else http://localhost:8765
>>> with client.run("my_product.my_agent", "data_processing") as run:  # doctest: +SKIP
...     run.update(items_succeeded=100)
"""

from local_telemetry.client.aio import AsyncTelemetryClient
from local_telemetry.client.delivery import DeliveryError, Stats
from local_telemetry.client.runs import Run
from local_telemetry.client.sync import TelemetryClient

__all__ = ["AsyncTelemetryClient", "DeliveryError", "Run", "Stats", "TelemetryClient"]
