-- wrk script for the suite's endpoints: `wrk ... -s api.lua URL -- MODE DATAFILE`.
--
-- MODE picks the request: get_one (GET /api/v1/orders/<id>), page (GET a page of 20),
-- post (POST /api/v1/orders), login (POST /api/v1/auth/login), item (the bare baseline's
-- GET /items/<id>), insert (the bare baseline's POST /orders, the same body as post).
-- DATAFILE has one tab-separated row per line, used round robin: get_one "token<TAB>order
-- id", page and post "token", login "email<TAB>password", item "id", insert anything;
-- get (GET any path, bench/scale.py) "token<TAB>path". done() prints one line `WRK_JSON {...}` that bench/wrk.py parses.

local mode = nil
local rows = {}
local index = 0
-- Globals: the main thread reads them from each worker thread with thread:get().
non2xx = 0
id = 0
local threads = {}

-- A product of the demo catalogue the suite seeds; the server prices it.
local ORDER_BODY = '{"currency":"EUR","items":[{"sku":"BOOK-1","quantity":2}]}'

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  for line in io.lines(args[2]) do
    local fields = {}
    for value in string.gmatch(line, "[^\t]+") do
      table.insert(fields, value)
    end
    if #fields > 0 then
      table.insert(rows, fields)
    end
  end
  if #rows == 0 then
    error("no rows in " .. args[2])
  end
  -- Threads start at different rows so they do not ask for the same thing in step.
  index = id * 7919 % #rows
end

local function bearer(token)
  return { ["Authorization"] = "Bearer " .. token, ["Accept"] = "application/json" }
end

function request()
  index = index % #rows + 1
  local row = rows[index]
  if mode == "get_one" then
    return wrk.format("GET", "/api/v1/orders/" .. row[2], bearer(row[1]))
  elseif mode == "get" then
    return wrk.format("GET", row[2], bearer(row[1]))
  elseif mode == "page" then
    return wrk.format("GET", "/api/v1/orders?limit=20", bearer(row[1]))
  elseif mode == "post" then
    local headers = bearer(row[1])
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/api/v1/orders", headers, ORDER_BODY)
  elseif mode == "login" then
    local body = string.format('{"email":"%s","password":"%s"}', row[1], row[2])
    return wrk.format("POST", "/api/v1/auth/login", { ["Content-Type"] = "application/json" }, body)
  elseif mode == "item" then
    return wrk.format("GET", "/items/" .. row[1])
  elseif mode == "insert" then
    return wrk.format("POST", "/orders", { ["Content-Type"] = "application/json" }, ORDER_BODY)
  end
  error("unknown mode " .. tostring(mode))
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, bad,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
