"""The per-request log line, written fast.

Every other log record goes through the standard ``logging`` module and
ecs-logging's formatter. That formatter costs about 100 µs a record here,
more than the whole redirect, so the access line — the same ECS fields — is
built directly, and lines are written in chunks: at most every
``FLUSH_SECONDS`` or ``FLUSH_LINES``, and at shutdown. ``tests/obs`` checks
that the line parses and carries the fields ecs-logging would give it.

``write_known`` is the redirect's line (docs/performance.md): the same fields,
for a request whose method, path and id are known to need no escaping, built in
one f-string from the clock reading the request already made.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

FLUSH_SECONDS = 0.1
FLUSH_LINES = 256
_encode = json.JSONEncoder(ensure_ascii=False).encode


def _dumps(text: str) -> str:
    """``text`` as a JSON string literal; plain ASCII needs no encoder (the usual case)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return _encode(text)


class AccessLog:
    def __init__(self, service: str) -> None:
        self.logger = logging.getLogger("shorty.request")
        self._tail = (
            f'"log":{{"logger":"shorty.request"}},"service":{{"name":"shorty-{service}"}}}}\n'
        )
        self._lines: list[str] = []
        self._flush_scheduled = False
        self._second = -1
        self._stamp = ""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def _timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def write_known(
        self,
        now: float,
        method: str,
        path: str,
        status: int,
        seconds: float,
        request_id: str,
        user_agent: str,
    ) -> None:
        """``write`` with no client, trace or problem, at POSIX time ``now``, for a
        request whose ``method``, ``path`` and ``request_id`` need no JSON escaping
        (the redirect's: a well-formed code; its own id or one the request log
        accepted). The user agent is escaped as ``write`` does."""
        self._append(
            f'{{"@timestamp":"{self._timestamp(now)}",'
            f'"log.level":"info","message":"{method} {path} {status}","ecs.version":"1.6.0",'
            f'"event":{{"duration":{int(seconds * 1e9)}}},'
            f'"http":{{"request":{{"id":"{request_id}","method":"{method}"}},'
            f'"response":{{"status_code":{status}}}}},'
            f'"url":{{"path":"{path}"}},'
            f'"user_agent":{{"original":{_dumps(user_agent)}}},'
            f"{self._tail}"
        )

    def write(
        self,
        *,
        method: str,
        path: str,
        status: int,
        seconds: float,
        request_id: str,
        user_agent: str,
        client: str | None,
        trace_id: str | None = None,
        problem: str | None = None,
        span_id: str | None = None,
    ) -> None:
        """``trace_id``: the request's W3C trace (32 hex digits), ``span_id`` its span (16);
        ``problem``: the slug of the problem type it was answered with (``[a-z0-9-]``),
        as ``error.code``."""
        client_part = f'"client":{{"address":{_dumps(client)}}},' if client else ""
        if trace_id:
            client_part += f'"trace":{{"id":"{trace_id}"}},'
        if span_id:
            client_part += f'"span":{{"id":"{span_id}"}},'
        if problem:
            client_part += f'"error":{{"code":"{problem}"}},'

        line = (
            f'{{"@timestamp":"{self._timestamp(time.time())}","log.level":"info",'
            f'"message":{_dumps(f"{method} {path} {status}")},"ecs.version":"1.6.0",'
            f"{client_part}"
            f'"event":{{"duration":{int(seconds * 1e9)}}},'
            f'"http":{{"request":{{"id":"{request_id}","method":"{method}"}},'
            f'"response":{{"status_code":{status}}}}},'
            f'"url":{{"path":{_dumps(path)}}},'
            f'"user_agent":{{"original":{_dumps(user_agent)}}},'
            f"{self._tail}"
        )
        self._append(line)

    def _append(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= FLUSH_LINES:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no loop (a synchronous caller): write at once
                self.flush()

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._lines:
            chunk, self._lines = "".join(self._lines), []
            sys.stdout.write(chunk)
            sys.stdout.flush()
