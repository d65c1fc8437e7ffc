"""Start and end a run in two calls (the runbook's logAgentRunStart / logAgentRunEnd)."""

from local_telemetry.client import TelemetryClient

client = TelemetryClient()
run = client.start_run("example.support_agent", "ticket", environment="dev")
# ... the agent works; the run shows as "running" meanwhile ...
run.associate_commit("abc1234567890", source="llm", author="Agent <agent@example.com>")
client.end_run(run, status="success", items_succeeded=1, output_summary="answered")
client.close()
print(run.event_id)
