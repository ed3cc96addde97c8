-- f) GET existing keys as 10,000 distinct clients: each request carries
-- X-Forwarded-For: 10.0.x.y (one of 10,000 addresses, at random), which the
-- server believes because it runs with --trusted-proxy 127.0.0.1. The
-- addresses are only header text: all traffic goes to 127.0.0.1.
-- Args (after --): N keys (default 100000), clients (default 10000).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

function init(args)
   local n = tonumber(args[1]) or 100000
   local clients = tonumber(args[2]) or 10000
   common.seed(id)
   local h = common.headers()
   local pool = {}
   for i = 1, common.pool_size do
      local c = math.random(0, clients - 1)
      h["X-Forwarded-For"] = "10." .. math.floor(c / 65536) % 256 .. "." .. math.floor(c / 256) % 256 .. "." .. c % 256
      pool[i] = wrk.format("GET", "/get/k" .. math.random(0, n - 1), h)
   end
   request = common.replay(pool)
end
