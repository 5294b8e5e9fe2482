"""`make bench`: `python -m bench [core|ratelimit|redirect] [options]` (all when no name)."""

import sys

from bench import core, ratelimit, redirect

name = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else None
if name == "core":
    core.main()
elif name == "ratelimit":
    ratelimit.main()
elif name == "redirect":
    redirect.main(sys.argv[2:])
elif name is None:
    core.main()
    ratelimit.main()
    redirect.main(sys.argv[1:])
else:
    raise SystemExit(f"unknown benchmark {name!r}: core, ratelimit or redirect")
