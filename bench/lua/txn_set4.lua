-- POST /txn with four set operations, each on a random preloaded key
-- k0..k(N-1) with the 200-byte value of the SET scenarios: the same writes
-- as four requests of set_overwrite.lua, in one request and one commit.
-- Args (after --): N, default 100000; ops per transaction, default 4.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

function init(args)
   local n = tonumber(args[1]) or 100000
   local ops = tonumber(args[2]) or 4
   common.seed(id)
   local h = common.headers({["Content-Type"] = "application/json"})
   local pool = {}
   for i = 1, common.pool_size do
      local parts = {}
      for j = 1, ops do
         parts[j] = string.format('{"op":"set","key":"k%d","value":"%s"}', math.random(0, n - 1), common.value)
      end
      pool[i] = wrk.format("POST", "/txn", h, '{"ops":[' .. table.concat(parts, ",") .. ']}')
   end
   request = common.replay(pool)
end
