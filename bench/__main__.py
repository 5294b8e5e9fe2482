"""`make bench`: run every benchmark in this folder and print its table.

For now this is the core micro-benchmark; the redirect harness (wrk against
the service and its baselines) joins it with the redirect issue.
"""

from bench import core

core.main()
