-- wrk script: replay pre-signed webhook deliveries, one file per thread, in order.
-- Arguments: <file prefix> [once]: with "once", a thread sends its file once, then stops
-- and says so in <prefix>.<n>.done (wrk itself runs for its whole duration: bench/soak.py
-- waits for that file, lets the last answers arrive and stops wrk).
-- Each thread reads <prefix>.<n>: lines of "<signature>\t<body>"; it writes the event ids
-- the server acknowledged (2xx) to <prefix>.<n>.acked so the runner can check the database.
-- Past the end of the file it starts again (those are retries); the runner says if it did.

local counter = 0
local threads = {}

function setup(thread)
  thread:set("n", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  requests = {}
  local prefix = args[1]
  once = args[2] == "once"
  done = prefix .. "." .. n .. ".done"
  for line in io.lines(prefix .. "." .. n) do
    local sig, body = line:match("^([^\t]*)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", "/webhooks/voucherify",
      {["Content-Type"] = "application/json", ["X-Voucherify-Signature"] = sig}, body)
  end
  acked = io.open(prefix .. "." .. n .. ".acked", "w")
  sent = 0
  answered = 0
end

function request()
  sent = sent + 1
  if once and sent > #requests then
    if sent == #requests + 1 then
      acked:flush()
      io.open(done, "w"):close()
      wrk.thread:stop()
    end
    return wrk.format("GET", "/healthz")
  end
  return requests[(sent - 1) % #requests + 1]
end

function response(status, headers, body)
  answered = answered + 1
  if status >= 200 and status < 300 then
    local id = body:match('"event_id":"([^"]+)"')
    if id then acked:write(id, "\n") end
  end
  if answered % 1000 == 0 then acked:flush() end
end
