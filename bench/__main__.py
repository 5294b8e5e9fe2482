"""`make bench`: `python -m bench [core|redirect] [options]` (both when no name is given)."""

import sys

from bench import core, redirect

if len(sys.argv) > 1 and sys.argv[1] == "core":
    core.main()
elif len(sys.argv) > 1 and sys.argv[1] == "redirect":
    redirect.main(sys.argv[2:])
else:
    core.main()
    redirect.main(sys.argv[1:])
