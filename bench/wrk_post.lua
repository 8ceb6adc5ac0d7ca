-- wrk script: POST a pre-built body, print a JSON summary on stdout.
-- Inputs come from the environment because wrk loads this script once per
-- thread and os.getenv is the simplest way to reach every copy:
--   WRK_BODY_FILE  path of the request body
--   WRK_CONTENT_TYPE  content-type header value
-- No response() callback: it would make wrk parse every response's headers in
-- Lua; summary.errors.status already counts responses with status > 399.

local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE")

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '\nWRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
      '"latency_p50_us":%d,"latency_p99_us":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99)))
end
