-- wrk script: like wrk_post.lua, but every request carries new trace ids.
-- Destinations that gather spans per trace (file/s3 `format: json`) then see
-- a stream of new traces, as from real traffic, instead of the same ten
-- traces growing for the whole run.
--   WRK_BODY_FILE          the protobuf request body
--   WRK_BODY_FILE .. ".ids"  one line per trace id in the body:
--                          "<0-based byte offset> <trace number>"
--                          (written by bench/harness.py, write_unique_ids)
--   WRK_BODY_FILE .. ".bodies"  if present: the body files to send in turn,
--                          one path a line, each with its own ".ids" (requests
--                          of distinct content: bench/harness.py make_bench)
--   WRK_CONTENT_TYPE       content-type header value
-- A new id is 8 random bytes (per wrk run, from /dev/urandom, so warm-up and
-- measured runs against the same router never collide) + a 6-byte request
-- counter + 2 bytes of trace number: unique, and never all zero.

-- A body's pieces: its segments with a slot for each trace id between them.
local function load(path)
   local f = assert(io.open(path, "rb"))
   local body = f:read("*a")
   f:close()
   local b = {pieces = {}, slot_at = {}, slot_trace = {}}
   local pos = 1
   for line in io.lines(path .. ".ids") do
      local offset, trace = line:match("^(%d+) (%d+)$")
      offset = tonumber(offset)
      b.pieces[#b.pieces + 1] = body:sub(pos, offset)
      b.pieces[#b.pieces + 1] = ""
      b.slot_at[#b.slot_at + 1] = #b.pieces
      b.slot_trace[#b.slot_trace + 1] = tonumber(trace)
      pos = offset + 17
   end
   b.pieces[#b.pieces + 1] = body:sub(pos)
   return b
end

local path = os.getenv("WRK_BODY_FILE")
local bodies = {}
local list = io.open(path .. ".bodies", "r")
if list then
   list:close()
   for line in io.lines(path .. ".bodies") do
      bodies[#bodies + 1] = load(line)
   end
else
   bodies[1] = load(path)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE")

local prefix
local counter = 0

function init(args)
   local random = assert(io.open("/dev/urandom", "rb"))
   prefix = random:read(8)
   random:close()
end

local function counter_bytes(n)
   local out = {}
   for i = 6, 1, -1 do
      out[i] = string.char(n % 256)
      n = math.floor(n / 256)
   end
   return table.concat(out)
end

function request()
   counter = counter + 1
   local b = bodies[(counter - 1) % #bodies + 1]
   local stem = prefix .. counter_bytes(counter)
   local ids = {}
   for i = 1, #b.slot_at do
      local trace = b.slot_trace[i]
      local id = ids[trace]
      if id == nil then
         id = stem .. string.char(math.floor(trace / 256), trace % 256)
         ids[trace] = id
      end
      b.pieces[b.slot_at[i]] = id
   end
   return wrk.format(nil, nil, nil, table.concat(b.pieces))
end

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
