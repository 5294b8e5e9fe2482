"""The HTTP services' stop is bounded as a whole (shorty.web.server)."""

import contextlib
import signal
import subprocess
import sys
import textwrap
import time

from tests.e2e.processes import get
from tests.helpers import free_port

HANGING = textwrap.dedent(
    """
    import asyncio, sys
    from contextlib import asynccontextmanager
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.responses import PlainTextResponse
    from shorty.web.server import serve

    async def ok(request):
        return PlainTextResponse("ok")

    async def stuck_shutdown_step():
        await asyncio.Event().wait()

    @asynccontextmanager
    async def lifespan(app):
        yield
        await stuck_shutdown_step()

    app = Starlette(routes=[Route("/livez", ok)], lifespan=lifespan)
    serve(app, host="127.0.0.1", port=int(sys.argv[1]), stop_seconds=1.0, log_config=None)
    """
)


def test_a_shutdown_that_hangs_ends_the_process_and_says_where_it_hung(tmp_path):
    port = free_port()
    out = tmp_path / "out.log"
    with out.open("wb") as sink:
        child = subprocess.Popen(
            [sys.executable, "-c", HANGING, str(port)], stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            for _ in range(100):  # bounded: 10 s to start
                with contextlib.suppress(OSError):
                    if get(port, "/livez")[0] == 200:
                        break
                time.sleep(0.1)
            child.send_signal(signal.SIGTERM)
            code = child.wait(15)  # without the bound: never (the test would time out)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(5)
    text = out.read_text()
    assert code == 1, text
    assert "stop overran 1 s; exiting" in text
    assert "stuck_shutdown_step" in text  # the stack of the task that hung
