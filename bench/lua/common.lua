-- Shared helpers for the rendezvous wrk scenarios. Each scenario script
-- loads this file with dofile() from its own folder.
--
-- Every scenario prints one parseable line from done():
--   BENCH requests=N duration_s=S rps=R p50_us=A p99_us=B connect=.. read=.. write=.. status=.. timeout=..
-- status counts responses that were not 2xx/3xx (wrk's own count).
--
-- Headers given with wrk -H (like "Connection: close") are kept on every
-- request the scripts build.

local M = {}

-- Requests built ahead of time per thread, so that Lua does not limit the
-- request rate; the pool is replayed in order.
M.pool_size = 50000

-- The 200-byte value the SET scenarios send.
M.value = string.rep("v", 200)

local thread_count = 0

-- setup runs in wrk's main state once per thread: hand each thread an id.
function M.setup(thread)
   thread:set("id", thread_count)
   thread_count = thread_count + 1
end

-- headers returns a fresh copy of the -H headers plus extra.
function M.headers(extra)
   local h = {}
   for k, v in pairs(wrk.headers) do h[k] = v end
   if extra then
      for k, v in pairs(extra) do h[k] = v end
   end
   return h
end

-- seed gives each thread its own random sequence.
function M.seed(tid)
   math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
   -- LuaJIT's first values after seeding are poorly mixed.
   for _ = 1, 10 do math.random() end
end

-- replay returns a request() function that cycles through pool.
function M.replay(pool)
   local i, n = 0, #pool
   return function()
      i = i + 1
      if i > n then i = 1 end
      return pool[i]
   end
end

function M.done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d duration_s=%.3f rps=%.1f p50_us=%.0f p99_us=%.0f connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout))
end

return M
