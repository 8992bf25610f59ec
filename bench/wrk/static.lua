-- wrk script: one fixed request, answers counted by status. For the HTTP stack's own ceiling
-- (e.g. BENCH_METHOD=OPTIONS BENCH_PATH=/api: no database, no GraphQL).
--
-- Environment: BENCH_METHOD (default GET), BENCH_PATH (default /health).
-- done() prints "BENCH_RESULT {json}" like add_action_contact.lua.

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.path = os.getenv("BENCH_PATH") or "/health"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

answered = 0
ok = 0
statuses = {}

function response(status, hdrs, body)
  answered = answered + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status >= 200 and status < 300 then ok = ok + 1 end
end

function done(summary, latency, requests)
  local t = { answered = 0, ok = 0 }
  local st = {}
  for _, thread in ipairs(threads) do
    t.answered = t.answered + (thread:get("answered") or 0)
    t.ok = t.ok + (thread:get("ok") or 0)
    for code, n in pairs(thread:get("statuses") or {}) do
      st[code] = (st[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(st) do table.insert(parts, '"' .. code .. '":' .. n) end
  local e = summary.errors
  print(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"issued":%d,"answered":%d,"ok":%d,"gql_errors":0,"statuses":{%s},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p75":%d,"p90":%d,'
      .. '"p99":%d,"p999":%d,"max":%d},"samples":[]}',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    t.answered, t.answered, t.ok, table.concat(parts, ","),
    latency.min, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
