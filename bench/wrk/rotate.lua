-- POSTs pre-generated bodies in rotation, giving every message of every request a fresh
-- messageId, so the processor sees realistic, non-duplicate traffic (dedupe does not short-cut).
--
--   wrk -t1 -c16 -d10s --latency -s bench/wrk/rotate.lua http://127.0.0.1:PORT \
--       -- <body dir> <body count> <path> <first id> [<Authorization header value>]
--
-- Bodies are <body dir>/body-0000.json, body-0001.json, ... (written by bench/ingest.py). In
-- them, each messageId ends in the 12-character marker "@@@@@@@@@@@@"; every request replaces
-- the markers with a 12-hex-digit request counter that starts at <first id>, so ids stay unique
-- across requests and runs while each body keeps its length. The request is pre-formatted and
-- pre-split at the markers in init(); request() is one table.concat.
--
-- done() prints one line "WRK_JSON {...}" with exact counts and latency percentiles (µs).

local MARKER = "@@@@@@@@@@@@"
local templates = {}
local count = 0
local next_index = 0
local counter = 0

function init(args)
  local dir, n, path = args[1], tonumber(args[2]), args[3]
  counter = tonumber(args[4])
  local authorization = args[5]
  local headers = { ["Content-Type"] = "application/json" }
  if authorization ~= nil and authorization ~= "" then
    headers["Authorization"] = authorization
  end
  for k = 1, n do
    local file = assert(io.open(string.format("%s/body-%04d.json", dir, k - 1), "rb"))
    local body = file:read("*a")
    file:close()
    local request = wrk.format("POST", path, headers, body)
    local pieces = {}
    local position = 1
    while true do
      local first, last = string.find(request, MARKER, position, true)
      if first == nil then break end
      pieces[#pieces + 1] = string.sub(request, position, first - 1)
      position = last + 1
    end
    pieces[#pieces + 1] = string.sub(request, position)
    templates[k] = pieces
  end
  count = n
end

function request()
  next_index = next_index % count + 1
  counter = counter + 1
  return table.concat(templates[next_index], string.format("%012x", counter))
end

function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,"connect":%d,' ..
    '"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
