"""One HTTP service of the Elastic Stack (Elasticsearch or Kibana) as ``shorty elk
setup`` talks to it: basic auth, an optional CA, a per-request timeout, and one
deadline over all the waiting of a run.

A call is tried again only when the server may get better by itself: it cannot be
reached, answers 5xx or 429, or says it is not ready yet. 401 and 403 and every other
4xx stop the run at once, with the server's own reason.

The standard library's HTTP client is enough for a dozen small requests, and keeps
the command free of any extra (``shorty chaos`` does the same)."""

from __future__ import annotations

import base64
import http.client
import json
import random
import re
import secrets
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shorty.elk import SetupError

Say = Callable[[str], None]


class Deadline:
    """The bound on all the waiting of one run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return self._end - time.monotonic()


class Backoff:
    """Pauses between tries: doubling from ``first`` up to ``cap``, each drawn from its
    upper half, so that setups started together (two init containers and the hook Job)
    do not knock in step."""

    def __init__(self, first: float = 0.2, cap: float = 10.0) -> None:
        self._next, self._cap = first, cap

    def pause(self) -> float:
        pause = self._next
        self._next = min(self._cap, pause * 2)
        return random.uniform(pause / 2, pause)  # noqa: S311 - jitter, not a secret


def one_line(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the parsed JSON, or the text when it is not JSON

    def reason(self) -> str:
        """What the server said, in one line: Elasticsearch's error type and reason (and
        its cause), Kibana's message or status, or the start of the text."""
        body = self.body
        if not isinstance(body, dict):
            return one_line(str(body)) or "no body"
        error = body.get("error")
        if isinstance(error, dict):  # Elasticsearch
            text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
            cause = error.get("caused_by")
            if isinstance(cause, dict) and cause.get("reason"):
                text += f" (caused by {cause.get('type', 'error')}: {cause['reason']})"
            return one_line(text)
        if "message" in body:  # Kibana
            return one_line(f"{error}: {body['message']}" if error else str(body["message"]))
        status = body.get("status")
        overall = status.get("overall") if isinstance(status, dict) else None
        if isinstance(overall, dict):  # Kibana's /api/status
            return one_line(f"Kibana is {overall.get('level')}: {overall.get('summary', '')}")
        return one_line(json.dumps(body))


class Transient(Exception):
    """The server could not be reached; it may be starting."""


def describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionError | http.client.HTTPException):
        return f"the connection broke ({type(exc).__name__})"
    return one_line(str(exc)) or type(exc).__name__


def parse(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


class Endpoint:
    """Elasticsearch or Kibana at ``url`` (a base path, such as Kibana's behind an
    Ingress, is kept)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        username: str,
        password: str,
        ca_file: Path | None,
        request_timeout: float,
        deadline: Deadline,
        say: Say,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.username = username
        self.request_timeout = request_timeout
        self.deadline = deadline
        self.say = say
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        self._headers.update(headers or {})
        context = None
        if ca_file is not None:
            try:
                context = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise SetupError(f"{ca_file}: not a readable CA certificate file ({exc})") from None
        self._open = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context)).open

    def __repr__(self) -> str:  # never the Authorization header
        return f"Endpoint({self.name!r}, {self.url!r}, username={self.username!r})"

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        accept: tuple[int, ...] = (),
        not_ready: Callable[[Answer], str | None] | None = None,
        what: str | None = None,
    ) -> Answer:
        """Send a JSON body (or none) and return the answer: a 2xx, or a status in
        ``accept``. ``not_ready`` turns a 2xx that is not what is awaited into the
        reason to try again."""
        data = None if body is None else json.dumps(body).encode()
        return self._tries(method, path, data, "application/json", accept, not_ready, what)

    def post_file(self, path: str, file_name: str, data: bytes, what: str | None = None) -> Answer:
        """POST one file as multipart/form-data (field ``file``), as Kibana's imports
        take it."""
        boundary = secrets.token_hex(16)
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
            "Content-Type: application/ndjson\r\n\r\n"
        )
        form = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
        return self._tries("POST", path, form, content_type, (), None, what)

    def _tries(
        self,
        method: str,
        path: str,
        data: bytes | None,
        content_type: str,
        accept: tuple[int, ...],
        not_ready: Callable[[Answer], str | None] | None,
        what: str | None,
    ) -> Answer:
        label = what or f"{method} {path}"
        backoff = Backoff()
        while True:
            problem: str | None
            try:
                answer = self._send(method, path, data, content_type)
            except Transient as exc:
                problem = str(exc)
            else:
                problem = self._judge(answer, label, accept, not_ready)
                if problem is None:
                    return answer
            left = self.deadline.left()
            if left <= 0:
                raise SetupError(
                    f"{self.name} at {self.url}: {label}: gave up after "
                    f"{self.deadline.seconds:g} s: {problem}"
                )
            pause = min(backoff.pause(), left)
            self.say(
                f"{self.name} at {self.url}: {label}: {problem}; "
                f"next try in {pause:.1f} s ({left:.0f} s left)"
            )
            time.sleep(pause)

    def _send(self, method: str, path: str, data: bytes | None, content_type: str) -> Answer:
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked by the CLI
            f"{self.url}/{path.lstrip('/')}", data=data, method=method, headers=headers
        )
        timeout = max(0.01, min(self.request_timeout, self.deadline.left()))
        try:
            with self._open(request, timeout=timeout) as response:
                return Answer(response.status, parse(response.read()))
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, parse(exc.read()))
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLError) and not isinstance(reason, ssl.SSLEOFError):
                # A certificate that is not trusted or a URL that is not TLS does not
                # get better by waiting.
                hint = " (--ca-file?)" if isinstance(reason, ssl.SSLCertVerificationError) else ""
                raise SetupError(
                    f"{self.name} at {self.url}: TLS failed{hint}: {describe(reason)}"
                ) from None
            raise Transient(
                describe(reason) if isinstance(reason, BaseException) else str(reason)
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise Transient(describe(exc)) from None

    def _judge(
        self,
        answer: Answer,
        what: str,
        accept: tuple[int, ...],
        not_ready: Callable[[Answer], str | None] | None,
    ) -> str | None:
        """None when the answer is the one wanted, the reason to try again when the
        server may get better by itself; SetupError when it will not."""
        status = answer.status
        if status in (401, 403):
            hint = ": check the user and SHORTY_ELK_PASSWORD" if status == 401 else ""
            raise SetupError(
                f"{self.name} at {self.url}: {what}: HTTP {status} for user "
                f"{self.username!r} ({answer.reason()}){hint}"
            )
        if status == 429 or status >= 500:
            return f"HTTP {status} ({answer.reason()})"
        if status >= 300 and status not in accept:
            raise SetupError(f"{self.name} at {self.url}: {what}: HTTP {status}: {answer.reason()}")
        return not_ready(answer) if not_ready is not None and status < 300 else None
