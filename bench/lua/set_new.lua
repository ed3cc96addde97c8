-- c) SET new keys: every request writes a key never written before,
-- n<run>-<thread>-<counter>, with a 200-byte value. Pass a distinct run id
-- (after --) to each run so that repeated runs also create new keys.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

local prefix, h, counter

function init(args)
   prefix = "/set/n" .. (args[1] or os.time()) .. "-" .. (id or 0) .. "-"
   h = common.headers()
   counter = 0
end

function request()
   counter = counter + 1
   return wrk.format("POST", prefix .. counter, h, common.value)
end
