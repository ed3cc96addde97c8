-- e) 90% GET / 10% SET: every tenth request overwrites a random preloaded
-- key with a 200-byte value, the rest read random preloaded keys.
-- Args (after --): N, default 100000.
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
      local key = "k" .. math.random(0, n - 1)
      if i % 10 == 0 then
         pool[i] = wrk.format("POST", "/set/" .. key, h, common.value)
      else
         pool[i] = wrk.format("GET", "/get/" .. key, h)
      end
   end
   request = common.replay(pool)
end
