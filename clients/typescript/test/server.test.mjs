// Against the real server process: the runbook's three calls and the v3 run API.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { TelemetryClient, configure, logAgentQc, logAgentRunEnd, logAgentRunStart } from "../dist/index.js";
import { freePort, startServer } from "./helpers.mjs";

describe("against the real server", () => {
  let server;
  let client;
  const errors = [];

  before(async () => {
    server = await startServer();
    client = new TelemetryClient({ apiUrl: server.url, onError: (e) => errors.push(e) });
  });
  after(async () => {
    await server?.stop();
  });

  test("start, end and QC show up through GET /api/v1/runs/{run_id} and the QC list", async () => {
    configure({ apiUrl: server.url });
    const start = await logAgentRunStart({
      agent_name: "support-bot",
      input_kind: "email",
      sla_target_seconds: 300,
      metadata: { channel: "email" },
    });
    assert.equal(start.ok, true, JSON.stringify(start));
    assert.match(start.runId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.deepEqual(start.value, { status: "created", run_id: start.runId });

    const running = await client.getRun(start.runId);
    assert.equal(running.ok, true);
    assert.equal(running.value.status, "running");
    assert.equal(running.value.job_type, "agent_run");

    const end = await logAgentRunEnd({
      run_id: start.runId,
      agent_name: "support-bot",
      resolution: "escalated",
      tokens_input: 1200,
      tokens_output: 300,
      cost_usd: 0.0123,
    });
    assert.equal(end.ok, true, JSON.stringify(end));
    assert.equal(end.value.status, "updated");

    const qc = await logAgentQc(start.runId, 4, "handed over correctly");
    assert.equal(qc.ok, true, JSON.stringify(qc));
    assert.equal(qc.status, 201);
    assert.equal(qc.value.event_id, start.runId);
    assert.equal(qc.value.score, 4);
    assert.equal(qc.value.notes, "handed over correctly");

    const run = await client.getRun(start.runId);
    assert.equal(run.ok, true);
    assert.equal(run.value.event_id, start.runId);
    assert.equal(run.value.run_id, start.runId);
    assert.equal(run.value.status, "partial");
    assert.equal(run.value.resolution, "escalated");
    assert.equal(run.value.tokens_input, 1200);
    assert.equal(run.value.input_kind, "email");
    assert.deepEqual(run.value.context_json, { channel: "email" });
    assert.ok(run.value.end_time);
    assert.equal(typeof run.value.duration_ms, "number");

    const reviews = await client.listQc(start.runId);
    assert.equal(reviews.ok, true);
    assert.deepEqual(reviews.value.map((r) => [r.score, r.notes]), [[4, "handed over correctly"]]);

    const listed = await client.listRuns({ agent_name: "support-bot", status: "partial" });
    assert.equal(listed.ok, true);
    assert.deepEqual(listed.value.map((r) => r.event_id), [start.runId]);
    assert.deepEqual(errors, []);
  });

  test("v3 calls: createRun, updateRun, associateCommit, createRuns, getRun, listRuns", async () => {
    const created = await client.createRun({ agent_name: "ts-agent", job_type: "sync" });
    assert.equal(created.ok, true, JSON.stringify(created));
    assert.equal(created.status, 201);
    assert.equal(created.value.status, "created");
    const eventId = created.value.event_id;

    const updated = await client.updateRun(eventId, { status: "success", items_succeeded: 3 });
    assert.equal(updated.ok, true, JSON.stringify(updated));
    assert.equal(updated.value.updated, true);
    assert.deepEqual([...updated.value.fields_updated].sort(), ["items_succeeded", "status"]);

    const commit = await client.associateCommit(eventId, { commit_hash: "ABCDEF1234567", commit_source: "ci" });
    assert.equal(commit.ok, true, JSON.stringify(commit));
    assert.equal(commit.value.commit_hash, "abcdef1234567");

    const run = await client.getRun(eventId);
    assert.equal(run.ok, true);
    assert.equal(run.value.status, "success");
    assert.equal(run.value.items_succeeded, 3);
    assert.equal(run.value.git_commit_hash, "abcdef1234567");

    const batch = await client.createRuns([
      { agent_name: "ts-batch", job_type: "j" },
      { agent_name: "ts-batch", job_type: "j", start_time: "2026-01-12 10:31:00" },
    ]);
    assert.equal(batch.ok, true, JSON.stringify(batch));
    assert.equal(batch.value.inserted, 1);
    assert.equal(batch.value.total, 2);
    assert.equal(batch.value.errors.length, 1);
    assert.equal(batch.value.errors[0].index, 1);

    const listed = await client.listRuns({ agent_name: "ts-batch", limit: 10 });
    assert.equal(listed.ok, true);
    assert.equal(listed.value.length, 1);

    const missing = await client.getRun("no-such-run");
    assert.equal(missing.ok, false);
    assert.equal(missing.error.status, 404);
  });

  test("validation errors come back as results with the server's detail, not exceptions", async () => {
    const seen = [];
    const strict = new TelemetryClient({ apiUrl: server.url, onError: (e) => seen.push(e) });
    const bad = await strict.logAgentRunStart({ run_id: "not-a-uuid", agent_name: "a" });
    assert.equal(bad.ok, false);
    assert.equal(bad.runId, "not-a-uuid");
    assert.equal(bad.error.kind, "http");
    assert.equal(bad.error.status, 422);
    assert.equal(bad.error.attempts, 1);
    assert.deepEqual(bad.error.detail[0].loc, ["body", "run_id"]);
    assert.match(bad.error.message, /run_id: must be a UUID/);

    const badScore = await strict.logAgentQc(crypto.randomUUID(), 6);
    assert.equal(badScore.ok, false);
    assert.equal(badScore.error.status, 422);

    const badFilter = await strict.listRuns({ status: "nonsense" });
    assert.equal(badFilter.ok, false);
    assert.equal(badFilter.error.status, 422);

    const badPatch = await strict.updateRun("whatever", { status: "failed" });
    assert.equal(badPatch.ok, false);
    assert.ok([404, 422].includes(badPatch.error.status));
    assert.equal(seen.length, 4);
  });

  test("a body that cannot be serialized is an error result", async () => {
    const seen = [];
    const c = new TelemetryClient({ apiUrl: server.url, onError: (e) => seen.push(e) });
    const result = await c.logAgentRunStart({ agent_name: "a", metadata: { big: 1n } });
    assert.equal(result.ok, false);
    assert.equal(result.error.kind, "invalid");
    assert.equal(seen.length, 1);
  });
});

describe("server down", () => {
  // The test's own timeout is the hang guard (no wall-clock bound on a shared machine);
  // the never-answering server in retry.test.mjs shows the deadline itself firing.
  test("resolves within its timeout with an error result and calls onError", { timeout: 30_000 }, async () => {
    const port = await freePort(); // nothing listens there any more
    const seen = [];
    const client = new TelemetryClient({
      apiUrl: `http://127.0.0.1:${port}`,
      timeoutMs: 1500,
      onError: (e) => seen.push(e),
    });
    const result = await client.logAgentRunStart({ agent_name: "a" });
    assert.equal(result.ok, false);
    assert.ok(["network", "timeout"].includes(result.error.kind), result.error.kind);
    assert.equal(seen.length, 1);
    assert.equal(seen[0], result.error);
  });

  test("an onError that throws does not throw into the caller", async () => {
    const port = await freePort();
    const client = new TelemetryClient({
      apiUrl: `http://127.0.0.1:${port}`,
      timeoutMs: 500,
      maxRetries: 0,
      onError: () => {
        throw new Error("boom");
      },
    });
    const result = await client.getRun("x");
    assert.equal(result.ok, false);
  });
});
