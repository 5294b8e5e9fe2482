"""A baseline app (bench/baselines.py) under granian, served the way `shorty serve
--server granian` serves Shorty (``shorty.web.server.serve``: the same embedded
granian, loop and settings), so the two differ only in the app.

    python -m bench.serve bare --port 8099
"""

from __future__ import annotations

import argparse

from bench import baselines
from shorty.web.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("app", choices=["bare", "starlette_dict"], help="baseline to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve(getattr(baselines, args.app), server="granian", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
