// Retries against a tiny local HTTP server with scripted answers.
import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";
import { TelemetryClient } from "../dist/index.js";

/** A server answering with `answers` in turn (the last one repeated); records requests. */
async function scripted(answers) {
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body, at: Date.now() });
      const [status, payload, headers = {}] = answers[Math.min(requests.length - 1, answers.length - 1)];
      res.writeHead(status, { "Content-Type": "application/json", ...headers });
      res.end(JSON.stringify(payload));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, requests, close: () => new Promise((resolve) => server.close(resolve)) };
}

const created = { status: "created", event_id: "e1", run_id: "r1" };

test("503 then 201: retried, and the token is sent as a Bearer header", async () => {
  const server = await scripted([[503, { detail: "busy" }], [201, created]]);
  try {
    const seen = [];
    const client = new TelemetryClient({ apiUrl: server.url, token: "s3cret", backoffBaseMs: 10, onError: (e) => seen.push(e) });
    const result = await client.createRun({ event_id: "e1", run_id: "r1", agent_name: "a", job_type: "j" });
    assert.equal(result.ok, true);
    assert.equal(result.status, 201);
    assert.deepEqual(result.value, created);
    assert.equal(server.requests.length, 2);
    assert.equal(server.requests[0].headers.authorization, "Bearer s3cret");
    assert.equal(server.requests[1].body, server.requests[0].body);
    const sent = JSON.parse(server.requests[0].body);
    assert.ok(sent.start_time, "start_time filled in");
    assert.deepEqual(seen, []);
  } finally {
    await server.close();
  }
});

test("400: not retried", async () => {
  const server = await scripted([[400, { detail: "bad request" }], [201, created]]);
  try {
    const seen = [];
    const client = new TelemetryClient({ apiUrl: server.url, backoffBaseMs: 10, onError: (e) => seen.push(e) });
    const result = await client.createRun({ agent_name: "a", job_type: "j" });
    assert.equal(result.ok, false);
    assert.equal(result.error.status, 400);
    assert.equal(result.error.detail, "bad request");
    assert.equal(result.error.attempts, 1);
    assert.equal(server.requests.length, 1);
    assert.equal(seen.length, 1);
  } finally {
    await server.close();
  }
});

test("429 with Retry-After: waits that many seconds before retrying", async () => {
  const server = await scripted([[429, { detail: "slow down" }, { "Retry-After": "1" }], [201, created]]);
  try {
    const client = new TelemetryClient({ apiUrl: server.url, backoffBaseMs: 10 });
    const result = await client.createRun({ agent_name: "a", job_type: "j" });
    assert.equal(result.ok, true);
    assert.equal(server.requests.length, 2);
    const gap = server.requests[1].at - server.requests[0].at;
    assert.ok(gap >= 950, `retried after ${gap} ms`);
  } finally {
    await server.close();
  }
});

test("5xx every time: gives up after maxRetries with the last answer", async () => {
  const server = await scripted([[500, { detail: "broken" }]]);
  try {
    const client = new TelemetryClient({ apiUrl: server.url, backoffBaseMs: 5, maxRetries: 2 });
    const result = await client.getRun("x");
    assert.equal(result.ok, false);
    assert.equal(result.error.status, 500);
    assert.equal(result.error.attempts, 3);
    assert.equal(server.requests.length, 3);
  } finally {
    await server.close();
  }
});

// The test's own timeout is the hang guard: no wall-clock upper bound on a shared machine.
test("a server that never answers: the call resolves at its timeout", { timeout: 30_000 }, async () => {
  const server = http.createServer(() => {}); // accepts, never answers
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const client = new TelemetryClient({ apiUrl: `http://127.0.0.1:${server.address().port}`, timeoutMs: 400 });
    const result = await client.logAgentQc("6f1c0e9a-3b7d-4c2e-9a51-2f8e4d7b1c30", 5);
    assert.equal(result.ok, false);
    assert.equal(result.error.kind, "timeout");
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test("apiUrl defaults to TELEMETRY_API_URL, then http://localhost:8765", () => {
  const saved = { url: process.env.TELEMETRY_API_URL, token: process.env.TELEMETRY_API_TOKEN };
  try {
    delete process.env.TELEMETRY_API_URL;
    assert.equal(new TelemetryClient().apiUrl, "http://localhost:8765");
    process.env.TELEMETRY_API_URL = "http://example.invalid:9/";
    assert.equal(new TelemetryClient().apiUrl, "http://example.invalid:9");
  } finally {
    if (saved.url === undefined) delete process.env.TELEMETRY_API_URL;
    else process.env.TELEMETRY_API_URL = saved.url;
  }
});
