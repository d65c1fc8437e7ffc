-- GET a fixed path given in BENCH_PATH (e.g. /api/v1/runs?limit=100).
local path = os.getenv("BENCH_PATH") or "/api/v1/runs?limit=100"
function request()
  return wrk.format("GET", path)
end
