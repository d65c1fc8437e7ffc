"""Track one run: the guide's first example, with the SDK.

Run a server (``./dev serve``), then ``python examples/quickstart.py``.
The server address comes from TELEMETRY_API_URL (default http://localhost:8765).
"""

from local_telemetry.client import TelemetryClient


def do_work() -> int:
    return 100


client = TelemetryClient()
with client.run("my-agent", "data-processing", environment="dev") as run:
    processed = do_work()
    run.update(items_succeeded=processed)
    run.set_metrics(input_tokens=1500, output_tokens=3000)
    run.log("processed the batch", level="info", rows=processed)
client.close()
print(run.event_id)
