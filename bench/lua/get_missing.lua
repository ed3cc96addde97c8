-- b) GET missing keys: random keys that were never stored (answered 404).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

function init(args)
   common.seed(id)
   local h = common.headers()
   local pool = {}
   for i = 1, common.pool_size do
      pool[i] = wrk.format("GET", "/get/missing" .. math.random(0, 999999999), h)
   end
   request = common.replay(pool)
end
