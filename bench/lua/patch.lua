-- PATCH /api/v1/runs/{id} on runs seeded as "seed-0" .. "seed-(N-1)" (N from BENCH_SEEDED).
local n = tonumber(os.getenv("BENCH_SEEDED") or "100000")
local counter = 0
local headers = {["Content-Type"] = "application/json"}

function request()
  counter = counter + 1
  local id = math.random(0, n - 1)
  local body = string.format(
    '{"status":"success","end_time":"2026-01-12T10:35:00Z","duration_ms":%d,'
    .. '"items_succeeded":%d,"output_summary":"done"}', counter % 100000, counter % 1000)
  return wrk.format("PATCH", "/api/v1/runs/seed-" .. id, headers, body)
end
