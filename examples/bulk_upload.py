"""Upload finished runs in bulk (through POST /api/v1/runs/batch)."""

import uuid

from local_telemetry.client import TelemetryClient

client = TelemetryClient()
runs = [
    {
        "event_id": str(uuid.uuid4()),
        "agent_name": "example.bulk_agent",
        "job_type": "import",
        "status": "success",
        "items_succeeded": n,
    }
    for n in range(50)
]
client.log_batch(runs)
client.close()
print(client.stats()["sent"])
