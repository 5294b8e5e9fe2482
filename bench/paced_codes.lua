-- wrk script: random codes as random_codes.lua, each connection waiting a fixed
-- number of milliseconds before each request, so that C connections ask for at
-- most about C * 1000 / ms requests per second (wrk has no fixed-rate mode; wrk2
-- is not packaged). Usage:  wrk -s bench/paced_codes.lua URL -- codes.txt MS [seed]
local codes = {}
local pause = 0

function init(args)
  for line in io.lines(args[1]) do
    codes[#codes + 1] = "/" .. line
  end
  pause = tonumber(args[2] or "0")
  math.randomseed(tonumber(args[3] or "1") + math.floor(os.clock() * 1000000))
end

function delay()
  return pause
end

function request()
  return wrk.format("GET", codes[math.random(#codes)])
end
