"""`make bench`: `python -m bench [core|ratelimit|ingest|redirect] [options]` (all when no name);
`python -m bench load ramp|spike|soak [options]` (load runs, never part of the all);
`python -m bench instructions|profile [options]` (valgrind's count per redirect, py-spy's
shares of its time; never part of the all)."""

import sys

from bench import core, ingest, instructions, load, profile, ratelimit, redirect

name = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else None
if name == "core":
    core.main()
elif name == "ratelimit":
    ratelimit.main()
elif name == "ingest":
    ingest.main(sys.argv[2:])
elif name == "load":
    load.main(sys.argv[2:])
elif name == "instructions":
    instructions.main(sys.argv[2:])
elif name == "profile":
    profile.main(sys.argv[2:])
elif name == "redirect":
    redirect.main(sys.argv[2:])
elif name is None:
    core.main()
    ratelimit.main()
    ingest.main([])
    redirect.main(sys.argv[1:])
else:
    raise SystemExit(
        f"unknown benchmark {name!r}: core, ratelimit, ingest, redirect, load, instructions"
        " or profile"
    )
