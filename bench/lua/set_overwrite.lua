-- d) SET overwriting existing keys: random over the preloaded k0..k(N-1),
-- 200-byte values. Args (after --): N, default 100000.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

function init(args)
   local n = tonumber(args[1]) or 100000
   common.seed(id)
   local h = common.headers()
   local pool = {}
   for i = 1, common.pool_size do
      pool[i] = wrk.format("POST", "/set/k" .. math.random(0, n - 1), h, common.value)
   end
   request = common.replay(pool)
end
