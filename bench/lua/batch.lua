-- POST /api/v1/runs/batch with BENCH_BATCH (default 1000) unique runs per request.
local size = tonumber(os.getenv("BENCH_BATCH") or "1000")
local counter = 0
local headers = {["Content-Type"] = "application/json"}

-- BENCH_PREFIX (set by bench/run.py, unique per scenario) keeps ids unique across runs.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("prefix", (os.getenv("BENCH_PREFIX") or "p") .. "-" .. threads)
end

local template = '{"event_id":"b%s-%d-%d","run_id":"run-%d","agent_name":"bench.agent_%d",'
  .. '"job_type":"bench_job_%d","start_time":"2026-01-%02dT10:30:00Z","status":"%s",'
  .. '"items_discovered":100,"items_succeeded":%d,"duration_ms":%d,'
  .. '"environment":"production","metrics_json":{"input_tokens":1500}}'
local statuses = {"success", "failure", "partial", "running", "success", "success"}

function request()
  counter = counter + 1
  local items = {}
  for i = 1, size do
    items[i] = string.format(template, prefix, counter, i, i, i % 10, i % 5,
      1 + i % 28, statuses[1 + i % 6], i % 100, i * 10)
  end
  return wrk.format("POST", "/api/v1/runs/batch", headers, "[" .. table.concat(items, ",") .. "]")
end
