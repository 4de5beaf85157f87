-- wrk script: POST a unique Media3Watch session summary (the shipped SDK's payload shape)
-- per request, count the 2xx answers, optionally pace each connection, and print the
-- figures bench/ingest.py reads as one JSON line.
--   M3W_BENCH_PATH      path to post to (default /v1/sessions)
--   M3W_BENCH_METHOD    GET sends no body (for the /health ceiling); default POST
--   M3W_BENCH_KEY       X-API-Key
--   M3W_BENCH_RUN       prefix making this run's session ids unique
--   M3W_BENCH_RATE      sessions/s this wrk thread offers (fixed-rate runs): requests
--                       are scheduled on a clock, not after the previous answer

local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_usec; } m3w_timeval;
  int gettimeofday(m3w_timeval *tv, void *tz);
]]
local clock = ffi.new("m3w_timeval")

local function now_ms()
  ffi.C.gettimeofday(clock, nil)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_usec) / 1000
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_prefix", string.format("%s-t%d", os.getenv("M3W_BENCH_RUN") or "run", thread_count))
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  acknowledged = 0
  local rate = tonumber(os.getenv("M3W_BENCH_RATE") or "")
  interval_ms = rate and 1000 / rate
  next_slot = nil
  wrk.method = os.getenv("M3W_BENCH_METHOD") or "POST"
  wrk.path = os.getenv("M3W_BENCH_PATH") or "/v1/sessions"
  wrk.headers["Content-Type"] = "application/json; charset=utf-8"
  wrk.headers["X-API-Key"] = os.getenv("M3W_BENCH_KEY") or "dev-key"
end

local template = '{"sessionId":"%s-%d","timestamp":%d,"sessionStartDateIso":"2026-02-15T09:59:15.000Z",'
  .. '"sessionDurationMs":%d,"startupTimeMs":%d,"rebufferTimeMs":%d,"rebufferCount":%d,'
  .. '"playTimeMs":%d,"rebufferRatio":0.028,"totalDroppedFrames":%d,"totalSeekCount":1,'
  .. '"totalSeekTimeMs":300,"meanVideoFormatBitrate":2500000,"errorCount":0}'

function request()
  if wrk.method == "GET" then
    return wrk.format()
  end
  counter = counter + 1
  local body = string.format(template, thread_prefix, counter, 1771149600000 + counter,
    45000 + counter % 1000, 300 + counter % 700, counter % 3000, counter % 4,
    42000 + counter % 5000, counter % 50)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    acknowledged = acknowledged + 1
  end
end

-- Each call books the thread's next send slot; with enough connections the thread offers
-- exactly its rate whatever the response times (open loop, within the connection count).
function delay()
  if not interval_ms then
    return nil
  end
  local now = now_ms()
  if not next_slot or next_slot < now - 1000 then
    next_slot = now  -- first request, or far behind: do not burst to catch up
  end
  local slot = next_slot
  next_slot = next_slot + interval_ms
  return math.max(0, slot - now)
end

function done(summary, latency, requests)
  local acked = 0
  for _, thread in ipairs(threads) do
    acked = acked + thread:get("acknowledged")
  end
  local errors = summary.errors
  io.write(string.format(
    'M3W_RESULT {"requests":%d,"duration_us":%d,"acknowledged":%d,"http_errors":%d,'
      .. '"socket_errors":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, acked, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
