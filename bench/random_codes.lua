-- wrk script: each request asks for a code drawn at random from the file given
-- after `--`, e.g.  wrk -s bench/random_codes.lua http://127.0.0.1:8080 -- codes.txt [seed]
local codes = {}

function init(args)
  for line in io.lines(args[1]) do
    codes[#codes + 1] = "/" .. line
  end
  math.randomseed(tonumber(args[2] or "1") + math.floor(os.clock() * 1000000))
end

function request()
  return wrk.format("GET", codes[math.random(#codes)])
end
