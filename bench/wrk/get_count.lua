-- wrk script: the widget's counter query over GET (a static request; answers are checked).
--
-- Environment: BENCH_PAGE (action page id, default 1).
-- done() prints "BENCH_RESULT {json}" like add_action_contact.lua.

local page = os.getenv("BENCH_PAGE") or "1"
local max_samples = 3

local function urlencode(s)
  return (string.gsub(s, "[^%w%-_%.~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local query = "query getCount($actionPage: Int!) { actionPage(id: $actionPage) "
  .. "{ campaign { stats { supporterCount } } } }"
wrk.method = "GET"
wrk.path = "/api?query=" .. urlencode(query)
  .. "&variables=" .. urlencode('{"actionPage":' .. page .. '}')
wrk.headers["Accept"] = "application/json"
wrk.headers["Referer"] = "https://campaign.example.org/sign"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

answered = 0
ok = 0
gql_errors = 0
statuses = {}
samples = {}
last_count = -1

function response(status, hdrs, body)
  answered = answered + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  local n = body and string.match(body, '"supporterCount":(%d+)')
  if status == 200 and n and not string.find(body, '"errors"', 1, true) then
    ok = ok + 1
    last_count = tonumber(n)
  else
    if status == 200 then gql_errors = gql_errors + 1 end
    if #samples < max_samples then
      table.insert(samples, key .. " " .. string.sub(body or "", 1, 400))
    end
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
  local t = { answered = 0, ok = 0, gql_errors = 0 }
  local st, smp, count = {}, {}, -1
  for _, thread in ipairs(threads) do
    for _, k in ipairs({ "answered", "ok", "gql_errors" }) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
    for code, n in pairs(thread:get("statuses") or {}) do
      st[code] = (st[code] or 0) + n
    end
    for _, s in ipairs(thread:get("samples") or {}) do
      if #smp < max_samples then table.insert(smp, s) end
    end
    count = math.max(count, thread:get("last_count") or -1)
  end
  local parts = {}
  for code, n in pairs(st) do table.insert(parts, json_string(code) .. ":" .. n) end
  local samples_json = {}
  for _, s in ipairs(smp) do table.insert(samples_json, json_string(s)) end
  local e = summary.errors
  print(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"issued":%d,"answered":%d,"ok":%d,"gql_errors":%d,"statuses":{%s},'
      .. '"supporter_count":%d,'
      .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p75":%d,"p90":%d,'
      .. '"p99":%d,"p999":%d,"max":%d},"samples":[%s]}',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    t.answered, t.answered, t.ok, t.gql_errors, table.concat(parts, ","), count,
    latency.min, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max,
    table.concat(samples_json, ",")))
end
