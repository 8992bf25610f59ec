-- wrk script: the widget's addActionContact, one unique email per request.
--
-- Environment (set by bench/widget_load.py):
--   BENCH_PAGE   action page id (default 1)
--   BENCH_RUN    a prefix unique to this wrk run, so emails never repeat across runs
--   BENCH_QUOTA  requests per wrk thread; 0 or unset = as many as fit in -d.
--                With a quota each thread sends exactly that many requests, then stops when
--                their answers are in (so "1,000 requests at concurrency 500" is exact) and
--                writes BENCH_THREAD_DONE to stderr: wrk itself waits for -d or SIGINT.
--
--   BENCH_RATE   requests per second for the whole run (all threads); 0 or unset = as fast
--                as the connections go. Paced, each thread sends at rate/threads on a fixed
--                schedule (a slot every threads/rate seconds, taken by the next free
--                connection), which is how N clients signing at a given total rate load the
--                server; latencies are measured from the slot's actual send.
--
--   BENCH_STAMP  1: the action's customFields carry the wall-clock time of the request in
--                milliseconds ({"t": 1733412345678.123}), so that a consumer of the org's
--                queue can tell each action's time from request to queue
--                (bench/pipeline_load.py).
--
-- done() prints one line "BENCH_RESULT {json}" with statuses, GraphQL errors (they come with
-- HTTP 200, so the body is checked), a few sample bodies and latency percentiles.

local page = os.getenv("BENCH_PAGE") or "1"
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local quota = tonumber(os.getenv("BENCH_QUOTA") or "0") or 0
local max_samples = 3

local path = "/api?id=" .. page

local query = "mutation addActionContact($action: ActionInput!, $actionPage: Int!, "
  .. "$contact: ContactInput!, $contactRef: ID, $privacy: ConsentInput!, "
  .. "$tracking: TrackingInput) { addActionContact(actionPageId: $actionPage, "
  .. "action: $action, contact: $contact, contactRef: $contactRef, privacy: $privacy, "
  .. "tracking: $tracking) { contactRef firstName } }"

local body_prefix = '{"query":"' .. query .. '","variables":{"actionPage":' .. page
  .. ',"action":{"actionType":"petition","customFields":"{\\"comment\\":\\"hi\\"}"}'
  .. ',"contact":{"firstName":"Ann","lastName":"Lee","email":"'
local body_suffix = '","phone":"","address":{"country":"FR","postcode":""}}'
  .. ',"privacy":{"optIn":true}'
  .. ',"tracking":{"source":"newsletter","medium":"email","campaign":"spring","content":""'
  .. ',"location":"https://campaign.example.org/sign"}}'
  .. ',"operationName":"addActionContact"}'

local headers = {
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json",
  ["Referer"] = "https://campaign.example.org/sign",
}

-- main state: one entry per thread
local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

-- thread state (globals so that thread:get can read them)
issued = 0
reserved = 0
answered = 0
ok = 0
gql_errors = 0
statuses = {}
samples = {}

function init(args)
  tid = tid or 0
end

local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
local thread_count = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
local stamp = os.getenv("BENCH_STAMP") == "1"

local clock_ms = nil
if rate > 0 or stamp then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]]
  local ts = ffi.new("bench_timespec")
  -- clk: 0 CLOCK_REALTIME, 1 CLOCK_MONOTONIC
  clock_ms = function(clk)
    ffi.C.clock_gettime(clk, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
end

if rate > 0 then
  local function now_ms()
    return clock_ms(1)
  end
  local interval = 1000 * thread_count / rate
  local next_slot = nil
  function delay()
    local now = now_ms()
    if next_slot == nil or next_slot < now - 1000 then
      next_slot = now -- (re)start the schedule; never burst to catch up more than 1 s
    end
    local wait = next_slot - now
    next_slot = next_slot + interval
    if wait < 0 then return 0 end
    return math.floor(wait)
  end
end

if quota > 0 then
  -- called before each request: connections past the quota wait (longer than -d), so the
  -- thread sends exactly `quota` requests
  function delay()
    if reserved < quota then
      reserved = reserved + 1
      return 0
    end
    return 3600000
  end
end

local stamped_prefix = '{"query":"' .. query .. '","variables":{"actionPage":' .. page
  .. ',"action":{"actionType":"petition","customFields":"{\\"t\\":'
local stamped_middle = '}"},"contact":{"firstName":"Ann","lastName":"Lee","email":"'

function request()
  issued = issued + 1
  local email = string.format("%s-%d-%d@bench.example.org", run, tid, issued)
  if stamp then
    local t = string.format("%.3f", clock_ms(0))
    return wrk.format(
      "POST", path, headers, stamped_prefix .. t .. stamped_middle .. email .. body_suffix
    )
  end
  return wrk.format("POST", path, headers, body_prefix .. email .. body_suffix)
end

local function sample(status, body)
  if #samples < max_samples then
    table.insert(samples, tostring(status) .. " " .. string.sub(body or "", 1, 400))
  end
end

function response(status, hdrs, body)
  answered = answered + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status >= 200 and status < 300 then
    if body and string.find(body, '"errors"', 1, true) then
      gql_errors = gql_errors + 1
      sample(status, body)
    elseif body and string.find(body, '"contactRef"', 1, true) then
      ok = ok + 1
    else
      gql_errors = gql_errors + 1
      sample(status, body)
    end
  else
    sample(status, body)
  end
  if quota > 0 and answered == quota then
    -- wrk's main thread sleeps for all of -d: tell the driver, which then sends SIGINT
    io.stderr:write("BENCH_THREAD_DONE\n")
    io.stderr:flush()
    wrk.thread:stop()
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local t = { issued = 0, answered = 0, ok = 0, gql_errors = 0 }
  local st, smp = {}, {}
  for _, thread in ipairs(threads) do
    for _, k in ipairs({ "issued", "answered", "ok", "gql_errors" }) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
    for code, n in pairs(thread:get("statuses") or {}) do
      st[code] = (st[code] or 0) + n
    end
    for _, s in ipairs(thread:get("samples") or {}) do
      if #smp < max_samples then table.insert(smp, s) end
    end
  end
  -- wrk calls request() once in the first thread to verify it; that one is never sent
  t.issued = t.issued - 1
  local parts = {}
  for code, n in pairs(st) do table.insert(parts, json_string(code) .. ":" .. n) end
  local samples_json = {}
  for _, s in ipairs(smp) do table.insert(samples_json, json_string(s)) end
  local e = summary.errors
  print(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"issued":%d,"answered":%d,"ok":%d,"gql_errors":%d,"statuses":{%s},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p75":%d,"p90":%d,'
      .. '"p99":%d,"p999":%d,"max":%d},"samples":[%s]}',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    t.issued, t.answered, t.ok, t.gql_errors, table.concat(parts, ","),
    latency.min, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max,
    table.concat(samples_json, ",")))
end
