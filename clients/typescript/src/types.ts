/**
 * Request and response shapes of the Local Telemetry HTTP API, written by hand to match
 * the server's OpenAPI document (`GET /openapi.json`; component schemas named alike).
 */

/** A JSON object (`metrics_json`, `context_json`, agent-run `metadata`). */
export type JsonObject = { [key: string]: unknown };

/** Canonical run statuses. */
export type RunStatus = "running" | "success" | "failure" | "partial" | "timeout" | "cancelled";
/** Aliases accepted on create and in the `status` filter, never on PATCH. */
export type RunStatusAlias = "failed" | "completed" | "succeeded";
export type Resolution = "resolved" | "escalated" | "failed";
export type CommitSource = "manual" | "llm" | "ci";

/** Optional fields shared by `RunCreate`, `RunUpdate` and `RunPublic`. */
export interface RunFields {
  end_time?: string | null;
  product?: string | null;
  product_family?: string | null;
  platform?: string | null;
  subdomain?: string | null;
  website?: string | null;
  website_section?: string | null;
  item_name?: string | null;
  agent_owner?: string | null;
  items_discovered?: number | null;
  items_succeeded?: number | null;
  items_failed?: number | null;
  items_skipped?: number | null;
  duration_ms?: number | null;
  input_summary?: string | null;
  output_summary?: string | null;
  source_ref?: string | null;
  target_ref?: string | null;
  error_summary?: string | null;
  error_details?: string | null;
  git_repo?: string | null;
  git_branch?: string | null;
  git_commit_hash?: string | null;
  git_run_tag?: string | null;
  git_commit_source?: CommitSource | null;
  git_commit_author?: string | null;
  git_commit_timestamp?: string | null;
  host?: string | null;
  environment?: string | null;
  trigger_type?: string | null;
  metrics_json?: JsonObject | null;
  context_json?: JsonObject | null;
  insight_id?: string | null;
  parent_run_id?: string | null;
  api_posted?: boolean | null;
  api_posted_at?: string | null;
  api_retry_count?: number | null;
  resolution?: Resolution | null;
  input_kind?: string | null;
  self_corrected?: boolean | null;
  tokens_input?: number | null;
  tokens_output?: number | null;
  cost_usd?: number | null;
  sla_target_seconds?: number | null;
}

/** Body of `POST /api/v1/runs` and one item of `POST /api/v1/runs/batch` (`RunCreate`). */
export interface RunCreate extends RunFields {
  /** Idempotency key; UUID recommended, no "/". */
  event_id: string;
  run_id: string;
  agent_name: string;
  job_type: string;
  /** ISO 8601 with timezone. */
  start_time: string;
  status?: RunStatus | RunStatusAlias;
  created_at?: string | null;
}

/**
 * What `createRun`/`createRuns` take: a `RunCreate` whose `event_id`, `run_id` (generated
 * with `crypto.randomUUID()`) and `start_time` (now) may be left out.
 */
export type RunInput = Omit<RunCreate, "event_id" | "run_id" | "start_time"> &
  Partial<Pick<RunCreate, "event_id" | "run_id" | "start_time">>;

/** Body of `PATCH /api/v1/runs/{event_id}` (`RunUpdate`): only the fields sent change. */
export interface RunUpdate extends RunFields {
  status?: RunStatus | null;
}

/** A stored run as the API returns it (`RunPublic`). */
export interface Run extends RunFields {
  event_id: string;
  run_id: string;
  agent_name: string;
  job_type: string;
  status: string;
  start_time: string;
  created_at: string;
  updated_at: string | null;
  commit_url: string | null;
  repo_url: string | null;
}
export type RunPublic = Run;

/** Answer to `POST /api/v1/runs` (`CreateResult`). */
export interface CreateResult {
  status: "created" | "duplicate";
  event_id: string;
  run_id?: string | null;
  message?: string | null;
  ignored_fields?: string[] | null;
}

/** Answer to `PATCH /api/v1/runs/{event_id}` (`UpdateResult`). */
export interface UpdateResult {
  event_id: string;
  updated: boolean;
  fields_updated: string[];
}

/** Body of `POST /api/v1/runs/{event_id}/associate-commit` (`CommitAssociation`). */
export interface CommitAssociation {
  /** 7-40 hex digits. */
  commit_hash: string;
  commit_source: CommitSource;
  commit_author?: string | null;
  commit_timestamp?: string | null;
}

/** Answer to `POST /api/v1/runs/{event_id}/associate-commit` (`CommitResult`). */
export interface CommitResult {
  status: "success";
  event_id: string;
  run_id: string;
  commit_hash: string;
  ignored_fields?: string[] | null;
}

/** Why one batch item was not stored (`BatchError`). */
export interface BatchError {
  index: number;
  event_id: string | null;
  detail: string;
}

/** Answer to `POST /api/v1/runs/batch` (`BatchResult`). */
export interface BatchResult {
  inserted: number;
  duplicates: number;
  errors: BatchError[];
  total: number;
  ignored_fields?: string[] | null;
}

/** Query parameters of `GET /api/v1/runs`. */
export interface RunFilters {
  agent_name?: string;
  job_type?: string;
  run_id?: string;
  parent_run_id?: string;
  status?: RunStatus | RunStatusAlias;
  created_before?: string;
  created_after?: string;
  start_time_from?: string;
  start_time_to?: string;
  /** 1-1000, default 100. */
  limit?: number;
  /** >= 0, default 0. */
  offset?: number;
}

/** Body of a QC review (`QcCreate`). */
export interface QcCreate {
  /** Integer 1 (poor) to 5 (excellent). */
  score: number;
  notes?: string | null;
  /** At most 256 characters. */
  reviewer?: string | null;
}

/** A stored QC review (`QcPublic`). */
export interface QcReview {
  id: number;
  event_id: string;
  score: number;
  notes: string | null;
  reviewer: string | null;
  created_at: string;
  ignored_fields?: string[] | null;
}
export type QcPublic = QcReview;

/** Body of `POST /api/agent-runs` (`AgentRunPost`): the runbook's `agent_run` record. */
export interface AgentRunPost {
  /** UUID (8-4-4-4-12 hex); the run's event_id and run_id. */
  run_id: string;
  agent_name: string;
  /** Default `agent_run` (on create). */
  job_type?: string | null;
  input_kind?: string | null;
  started_at?: string | null;
  /** Requires `resolution`. */
  ended_at?: string | null;
  resolution?: Resolution | null;
  self_corrected?: boolean | null;
  tokens_input?: number | null;
  tokens_output?: number | null;
  cost_usd?: number | null;
  sla_target_seconds?: number | null;
  /** Stored as the run's `context_json`. */
  metadata?: JsonObject | null;
  /** QC reviews stored with the run (at most 100). */
  qc?: QcCreate[] | null;
}

/** What `logAgentRunStart` takes: `run_id` and `started_at` may be left out. */
export type AgentRun = Omit<AgentRunPost, "run_id"> & { run_id?: string };

/** What `logAgentRunEnd` takes: `run_id` and `resolution` are required. */
export type AgentRunEnd = AgentRunPost & { resolution: Resolution };

/** Answer to `POST /api/agent-runs` (`AgentRunResult`). */
export interface AgentRunResult {
  status: "created" | "updated" | "duplicate";
  run_id: string;
  ignored_fields?: string[] | null;
}

/** One problem of a 422 answer (`ValidationError`). */
export interface ValidationProblem {
  loc: (string | number)[];
  msg: string;
  type: string;
  input?: unknown;
  ctx?: JsonObject;
}

/** The `detail` member of an error answer: a message or a list of problems. */
export type ErrorDetail = string | ValidationProblem[] | unknown;
