-- wrk script of bench/decisions.py: POSTs decision bodies, one JSON object a line of the file
-- given after `--`, in turn, with the platform key given after it; prints one result line.
--   wrk -t2 -c8 -d10s --latency -s bench/wrk/decisions.lua URL -- BODIES_FILE KEY

local bodies = {}
local position = 0
local threads_set_up = 0

function setup(thread)
  -- Each thread starts at another place in the bodies (the global `offset` of its own state).
  thread:set("offset", threads_set_up * 7919)
  threads_set_up = threads_set_up + 1
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      bodies[#bodies + 1] = line
    end
  end
  position = (offset or 0) % #bodies
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[2]
end

function request()
  position = position % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[position])
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "status_errors": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout
  ))
end
