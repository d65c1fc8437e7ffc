/**
 * @local-telemetry/client: a typed, dependency-free client for Local Telemetry.
 *
 * Like the Python SDK, no call ever throws into the caller because telemetry failed:
 * every method resolves to a `TelemetryResult` (`{ ok: true, value }` or
 * `{ ok: false, error }`) and failures are also handed to `onError`. Every call has a
 * deadline (`timeoutMs`, retries included); network errors, timeouts of one attempt,
 * 5xx and 429 are retried with exponential backoff and full jitter (honouring
 * `Retry-After` seconds); other 4xx answers are not retried.
 */

import type {
  AgentRun,
  AgentRunEnd,
  AgentRunPost,
  AgentRunResult,
  BatchResult,
  CommitAssociation,
  CommitResult,
  CreateResult,
  ErrorDetail,
  QcCreate,
  QcReview,
  Run,
  RunCreate,
  RunFilters,
  RunInput,
  RunUpdate,
  UpdateResult,
} from "./types.js";

export type * from "./types.js";

export const DEFAULT_API_URL = "http://localhost:8765";

/** Why a call failed. */
export interface TelemetryError {
  /** `http`: the server answered with an error status; `network`: no answer;
   * `timeout`: the call's deadline passed; `invalid`: the request could not be built. */
  kind: "http" | "network" | "timeout" | "invalid";
  message: string;
  /** HTTP status, when the server answered. */
  status?: number;
  /** The server's `detail` (a message, or the list of validation problems). */
  detail?: ErrorDetail;
  method: string;
  path: string;
  /** Requests sent (0 when none could be). */
  attempts: number;
}

export type TelemetryResult<T> =
  | { ok: true; value: T; status: number }
  | { ok: false; error: TelemetryError };

/** A result of an agent-run call, carrying the run id used (generated or given). */
export type AgentRunOutcome = TelemetryResult<AgentRunResult> & { runId: string };

export interface TelemetryClientOptions {
  /** Default: `TELEMETRY_API_URL`, then `http://localhost:8765`. */
  apiUrl?: string;
  /** Sent as `Authorization: Bearer`; default `TELEMETRY_API_TOKEN`. */
  token?: string;
  /** Deadline of one call, retries included (default 5000 ms). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 3). */
  maxRetries?: number;
  /** First backoff delay (default 100 ms), doubled per retry up to `backoffCapMs`. */
  backoffBaseMs?: number;
  /** Largest backoff delay (default 2000 ms). */
  backoffCapMs?: number;
  /** Called with every failure; an exception it throws is swallowed. */
  onError?: (error: TelemetryError) => void;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const value = proc?.env?.[name];
  return value === undefined || value === "" ? undefined : value;
}

function nowIso(): string {
  return new Date().toISOString();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** `Retry-After` in milliseconds (delta-seconds or an HTTP date), or undefined. */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const trimmed = header.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const when = Date.parse(trimmed);
  return Number.isNaN(when) ? undefined : Math.max(0, when - Date.now());
}

function describe(detail: ErrorDetail, status: number): string {
  if (typeof detail === "string") return `HTTP ${status}: ${detail}`;
  if (Array.isArray(detail)) {
    const parts = detail.map((p: unknown) => {
      const problem = p as { loc?: unknown[]; msg?: unknown };
      const loc = Array.isArray(problem.loc) ? problem.loc.join(".") : "";
      return loc ? `${loc}: ${String(problem.msg)}` : String(problem.msg);
    });
    return `HTTP ${status}: ${parts.join("; ")}`;
  }
  return `HTTP ${status}`;
}

interface Attempt {
  response?: Response;
  body?: unknown;
  failure?: { kind: "network" | "timeout"; message: string };
}

export class TelemetryClient {
  readonly apiUrl: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly backoffBaseMs: number;
  readonly backoffCapMs: number;
  private readonly token: string | undefined;
  private readonly onError: ((error: TelemetryError) => void) | undefined;
  private readonly fetchImpl: typeof fetch;

  constructor(options: TelemetryClientOptions = {}) {
    this.apiUrl = (options.apiUrl ?? env("TELEMETRY_API_URL") ?? DEFAULT_API_URL).replace(/\/+$/, "");
    this.token = options.token ?? env("TELEMETRY_API_TOKEN");
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxRetries = options.maxRetries ?? 3;
    this.backoffBaseMs = options.backoffBaseMs ?? 100;
    this.backoffCapMs = options.backoffCapMs ?? 2000;
    this.onError = options.onError;
    this.fetchImpl = options.fetch ?? ((...args) => fetch(...args));
  }

  // ----- the runbook's wrappers -----

  /** Log the start of an agent run: `run_id` generated and `started_at` set when missing.
   * The outcome's `runId` is the id to pass to `logAgentRunEnd` and `logAgentQc`. */
  async logAgentRunStart(run: AgentRun): Promise<AgentRunOutcome> {
    const runId = run?.run_id ?? crypto.randomUUID();
    const body: AgentRunPost = { ...run, run_id: runId, started_at: run?.started_at ?? nowIso() };
    return { ...(await this.request<AgentRunResult>("POST", "/api/agent-runs", body)), runId };
  }

  /** Log the end of an agent run (`run_id` and `resolution` required): `ended_at` is set
   * to now when missing. */
  async logAgentRunEnd(run: AgentRunEnd): Promise<AgentRunOutcome> {
    const runId = run?.run_id;
    const body: AgentRunPost = { ...run, ended_at: run?.ended_at ?? nowIso() };
    return { ...(await this.request<AgentRunResult>("POST", "/api/agent-runs", body)), runId };
  }

  /** Add a QC review (integer score 1-5) to an agent run. */
  async logAgentQc(
    runId: string,
    score: number,
    notes?: string | null,
    reviewer?: string | null,
  ): Promise<TelemetryResult<QcReview>> {
    const body: QcCreate = { score };
    if (notes !== undefined) body.notes = notes;
    if (reviewer !== undefined) body.reviewer = reviewer;
    return this.request<QcReview>("POST", `/api/agent-runs/${this.segment(runId)}/qc`, body);
  }

  /** A run's QC reviews, oldest first. */
  async listQc(eventId: string): Promise<TelemetryResult<QcReview[]>> {
    return this.request<QcReview[]>("GET", `/api/v1/runs/${this.segment(eventId)}/qc`);
  }

  // ----- the v3 run API -----

  /** `POST /api/v1/runs`: `event_id`/`run_id` generated and `start_time` set when missing. */
  async createRun(run: RunInput): Promise<TelemetryResult<CreateResult>> {
    return this.request<CreateResult>("POST", "/api/v1/runs", this.completeRun(run));
  }

  /** `PATCH /api/v1/runs/{event_id}`: only the fields sent change. */
  async updateRun(eventId: string, update: RunUpdate): Promise<TelemetryResult<UpdateResult>> {
    return this.request<UpdateResult>("PATCH", `/api/v1/runs/${this.segment(eventId)}`, update);
  }

  /** `POST /api/v1/runs/{event_id}/associate-commit`. */
  async associateCommit(
    eventId: string,
    commit: CommitAssociation,
  ): Promise<TelemetryResult<CommitResult>> {
    const path = `/api/v1/runs/${this.segment(eventId)}/associate-commit`;
    return this.request<CommitResult>("POST", path, commit);
  }

  /** `POST /api/v1/runs/batch`: each run completed as in `createRun`. */
  async createRuns(runs: RunInput[]): Promise<TelemetryResult<BatchResult>> {
    let body: RunCreate[];
    try {
      body = runs.map((run) => this.completeRun(run));
    } catch (exc) {
      return this.fail({ kind: "invalid", message: String(exc), method: "POST", path: "/api/v1/runs/batch", attempts: 0 });
    }
    return this.request<BatchResult>("POST", "/api/v1/runs/batch", body);
  }

  /** `GET /api/v1/runs/{event_id}` (404 is an error result). */
  async getRun(eventId: string): Promise<TelemetryResult<Run>> {
    return this.request<Run>("GET", `/api/v1/runs/${this.segment(eventId)}`);
  }

  /** `GET /api/v1/runs`: runs matching the filters, newest first. */
  async listRuns(filters: RunFilters = {}): Promise<TelemetryResult<Run[]>> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filters ?? {})) {
      if (value !== undefined && value !== null) query.append(key, String(value));
    }
    const qs = query.toString();
    return this.request<Run[]>("GET", qs ? `/api/v1/runs?${qs}` : "/api/v1/runs");
  }

  // ----- transport -----

  private completeRun(run: RunInput): RunCreate {
    return {
      ...run,
      event_id: run.event_id ?? crypto.randomUUID(),
      run_id: run.run_id ?? crypto.randomUUID(),
      start_time: run.start_time ?? nowIso(),
    };
  }

  private segment(id: string): string {
    return encodeURIComponent(String(id));
  }

  private fail<T>(error: TelemetryError): TelemetryResult<T> {
    try {
      this.onError?.(error);
    } catch {
      // A failing error handler must not break the caller either.
    }
    return { ok: false, error };
  }

  /** Send one call with retries; never throws. */
  async request<T>(method: string, path: string, body?: unknown): Promise<TelemetryResult<T>> {
    try {
      return await this.send<T>(method, path, body);
    } catch (exc) {
      return this.fail({ kind: "invalid", message: String(exc), method, path, attempts: 0 });
    }
  }

  private async send<T>(method: string, path: string, body?: unknown): Promise<TelemetryResult<T>> {
    const deadline = Date.now() + this.timeoutMs;
    const headers: Record<string, string> = { Accept: "application/json" };
    let payload: string | undefined;
    if (body !== undefined) {
      try {
        payload = JSON.stringify(body);
      } catch (exc) {
        return this.fail({ kind: "invalid", message: `cannot serialize the body: ${String(exc)}`, method, path, attempts: 0 });
      }
      headers["Content-Type"] = "application/json";
    }
    if (this.token) headers["Authorization"] = `Bearer ${this.token}`;

    let attempts = 0;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        return this.fail({ kind: "timeout", message: `no answer within ${this.timeoutMs} ms`, method, path, attempts });
      }
      attempts += 1;
      const attempt = await this.attempt(method, path, headers, payload, remaining);
      let retryable: boolean;
      let error: TelemetryError;
      let serverDelay: number | undefined;
      if (attempt.response) {
        const status = attempt.response.status;
        if (status >= 200 && status < 300) {
          return { ok: true, value: attempt.body as T, status };
        }
        const detail = (attempt.body as { detail?: ErrorDetail } | undefined)?.detail ?? attempt.body;
        error = { kind: "http", message: describe(detail, status), status, detail, method, path, attempts };
        retryable = status >= 500 || status === 429;
        serverDelay = retryAfterMs(attempt.response.headers.get("retry-after"));
      } else {
        const failure = attempt.failure ?? { kind: "network" as const, message: "no answer" };
        error = { kind: failure.kind, message: failure.message, method, path, attempts };
        retryable = true;
      }
      if (!retryable || attempts > this.maxRetries) return this.fail(error);
      const backoff = Math.min(this.backoffCapMs, this.backoffBaseMs * 2 ** (attempts - 1));
      let delay = Math.random() * backoff; // full jitter
      if (serverDelay !== undefined) delay = Math.max(delay, serverDelay);
      if (Date.now() + delay >= deadline) {
        // The next attempt could not start before the deadline: report this failure now.
        return this.fail(error);
      }
      await sleep(delay);
    }
  }

  private async attempt(
    method: string,
    path: string,
    headers: Record<string, string>,
    payload: string | undefined,
    remainingMs: number,
  ): Promise<Attempt> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, remainingMs);
    try {
      const init: RequestInit = { method, headers, signal: controller.signal };
      if (payload !== undefined) init.body = payload;
      const response = await this.fetchImpl(this.apiUrl + path, init);
      const text = await response.text();
      let body: unknown = undefined;
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
      }
      return { response, body };
    } catch (exc) {
      if (timedOut) {
        return { failure: { kind: "timeout", message: `no answer within ${this.timeoutMs} ms` } };
      }
      const cause = (exc as { cause?: { code?: string; message?: string } })?.cause;
      const reason = cause?.code ?? cause?.message ?? (exc as Error)?.message ?? String(exc);
      return { failure: { kind: "network", message: `cannot reach ${this.apiUrl}: ${reason}` } };
    } finally {
      clearTimeout(timer);
    }
  }
}

// ----- the default client and the runbook's top-level functions -----

let defaultClient: TelemetryClient | undefined;

/** The client the top-level functions use (created from the environment on first use). */
export function getDefaultClient(): TelemetryClient {
  defaultClient ??= new TelemetryClient();
  return defaultClient;
}

/** Replace the default client with one built from `options`. */
export function configure(options: TelemetryClientOptions = {}): TelemetryClient {
  defaultClient = new TelemetryClient(options);
  return defaultClient;
}

/** The runbook's `logAgentRunStart(run)`, on the default client. */
export function logAgentRunStart(run: AgentRun): Promise<AgentRunOutcome> {
  return getDefaultClient().logAgentRunStart(run);
}

/** The runbook's `logAgentRunEnd(run)`, on the default client. */
export function logAgentRunEnd(run: AgentRunEnd): Promise<AgentRunOutcome> {
  return getDefaultClient().logAgentRunEnd(run);
}

/** The runbook's `logAgentQc(run_id, score, notes)`, on the default client. */
export function logAgentQc(
  runId: string,
  score: number,
  notes?: string | null,
  reviewer?: string | null,
): Promise<TelemetryResult<QcReview>> {
  return getDefaultClient().logAgentQc(runId, score, notes, reviewer);
}
