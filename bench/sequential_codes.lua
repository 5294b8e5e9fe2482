-- wrk script used to warm caches: walks the codes file in order and wraps around.
-- Run it with one thread (-t1).
local codes = {}
local next_index = 1

function init(args)
  for line in io.lines(args[1]) do
    codes[#codes + 1] = "/" .. line
  end
end

function request()
  local path = codes[next_index]
  next_index = next_index % #codes + 1
  return wrk.format("GET", path)
end
