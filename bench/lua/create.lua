-- POST /api/v1/runs with unique event_ids (~550-byte bodies, 10 agents).
local counter = 0

-- BENCH_PREFIX (set by bench/run.py, unique per scenario) keeps ids unique across runs.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("prefix", (os.getenv("BENCH_PREFIX") or "p") .. "-" .. threads)
end

local template = '{"event_id":"%s-%d","run_id":"run-%s-%d","agent_name":"bench.agent_%d",'
  .. '"job_type":"bench_job","start_time":"2026-01-12T10:30:00Z","status":"running",'
  .. '"items_discovered":100,"product":"seo-intelligence","platform":"web",'
  .. '"website":"example.com","website_section":"blog","item_name":"how-to-optimize-seo",'
  .. '"environment":"production","git_repo":"https://github.com/myorg/myrepo",'
  .. '"git_branch":"main","metrics_json":{"input_tokens":1500,"output_tokens":3000,'
  .. '"api_cost_usd":0.05},"context_json":{"model":"claude-sonnet","temperature":0.7}}'

local headers = {["Content-Type"] = "application/json"}

function request()
  counter = counter + 1
  local body = string.format(template, prefix, counter, prefix, counter, counter % 10)
  return wrk.format("POST", "/api/v1/runs", headers, body)
end
