-- wrk script: replay pre-signed webhook deliveries, one file per thread, in order.
-- Argument: <file prefix>.
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
