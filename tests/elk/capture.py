"""Real log lines of every Shorty process, from a scripted workload.

The API, the redirect service and the worker run as production runs them
(``shorty serve``, access log on, level INFO), the operator against an emulated
Kubernetes API; a short workload touches what an on-call engineer searches for
(redirects, misses, a bot, bad input, a failed login, an admin action, a rate
limit, a ShortLink synced and one refused). Each process's stdout is kept: the
lines Filebeat would read from the container's log.

``python -m tests.elk.capture DIR`` writes them to ``DIR/<service>.ndjson`` and
prints the sizing figures of docs/logging.md (bytes per line, lines per redirect).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shorty import embedded
from tests.e2e.processes import Service, call_json, get
from tests.elk.fields import flatten
from tests.fleet import fleet
from tests.helpers import scalar, user_with_key, wait_for
from tests.operator.helpers import shortlink
from tests.operator.kube import FakeKube, ready

SERVICES = ("api", "redirect", "worker", "operator")
REDIRECTS = 40  # links followed by a browser in the workload
# A caller's W3C trace (as an ingress with tracing sends it): its id must reach the log.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Captured:
    """Each service's stdout lines, and how many redirects the workload followed."""

    lines: dict[str, list[str]]
    redirects: int

    def records(self, service: str) -> list[dict[str, Any]]:
        """The service's lines that are JSON objects (every line should be)."""
        return [json.loads(line) for line in self.lines[service] if line.startswith("{")]

    def all_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for service in SERVICES:
            for record in self.records(service):
                yield service, record

    def fields(self) -> dict[str, list[tuple[str, Any]]]:
        """Each field the lines carry, by dotted name (tests/elk/fields.py): the
        (service, value) pairs it was seen with, in order."""
        seen: dict[str, list[tuple[str, Any]]] = {}
        for service, record in self.all_records():
            for name, value in flatten(record):
                seen.setdefault(name, []).append((service, value))
        return seen


def capture(admin_url: str, folder: Path) -> Captured:
    """Run the workload against fresh processes on a database of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.log"):  # the processes append: start from nothing
        old.unlink()
    settings = {
        "SHORTY_PUBLIC_URL": "https://sho.rt",
        "SHORTY_ACCESS_LOG": "true",
        "SHORTY_LOG_LEVEL": "INFO",
        # A small limit, so that the workload meets a 429 as users do.
        "SHORTY_LIMIT_PER_KEY": "20/minute",
    }
    with fleet(admin_url, folder, **settings) as running:
        _workload(running.url, running.api, running.redirect, running.kube)
    lines = {service: (folder / f"{service}.log").read_text().splitlines() for service in SERVICES}
    return Captured(lines, REDIRECTS)


def _workload(url: str, api: Service, redirect: Service, kube: FakeKube) -> None:
    _, key = user_with_key(url, "logs@example.com", scopes=("urls:read", "urls:write"))
    auth = {"Authorization": f"Bearer {key}"}
    status, link = call_json(
        api.port, "POST", "/api/v1/shorten", {"target": "https://example.com/a"}, auth
    )
    assert status == 201, link
    code = link["code"]
    headers = {"User-Agent": BROWSER, "Referer": "https://news.example.org/item"}
    for _ in range(REDIRECTS):
        status, _, _ = get(redirect.port, f"/{code}", headers=headers)
        assert status in (301, 302), status
    get(redirect.port, "/no-such-code", headers=headers)  # 404
    get(redirect.port, f"/{code}", headers={"User-Agent": "Googlebot/2.1"})  # a bot
    get(redirect.port, f"/{code}", headers={**headers, "traceparent": TRACEPARENT})
    call_json(api.port, "POST", "/api/v1/shorten", {"target": "javascript:alert(1)"}, auth)  # 422
    call_json(api.port, "POST", "/api/v1/shorten", {"target": "https://example.com"})  # 401
    call_json(
        api.port,
        "POST",
        "/api/v1/auth/login",
        {"email": "logs@example.com", "password": "wrong password"},
    )
    person = {"email": "reader@example.com", "password": "a long enough passphrase"}
    status, _ = call_json(api.port, "POST", "/api/v1/auth/register", person)
    assert status in (201, 202), status
    status, _ = call_json(api.port, "POST", "/api/v1/auth/login", person)
    assert status == 200, status
    call_json(api.port, "GET", f"/api/v1/urls/{code}", headers=auth)
    for _ in range(25):  # past the limit: 429
        status, _ = call_json(api.port, "GET", f"/api/v1/urls/{code}", headers=auth)
        if status == 429:
            break

    kube.apply(shortlink("docs", "default", alias="docs-link"))
    wait_for(lambda: _reason(kube, "docs") == "Synced", 30, "ShortLink docs to sync")
    kube.apply(shortlink("bad", "default", target="https://sho.rt/a-loop"))
    wait_for(lambda: _reason(kube, "bad") not in (None, "Synced"), 30, "ShortLink bad refused")
    wait_for(lambda: _clicks_stored(url) >= REDIRECTS, 30, "the worker to store the clicks")


def _reason(kube: FakeKube, name: str) -> str | None:
    reason = ready(kube.get(name)).get("reason")
    return str(reason) if reason else None


def _clicks_stored(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM clicks"))


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else Path("log-samples")
    postgres, admin_url = embedded.start_postgres(Path(".shorty-data") / "capture")
    try:
        captured = capture(admin_url, folder / "run")
    finally:
        postgres.cleanup()
    for service in SERVICES:
        (folder / f"{service}.ndjson").write_text("\n".join(captured.lines[service]) + "\n")
    print(json.dumps(sizing(captured), indent=2))


def sizing(captured: Captured) -> dict[str, Any]:
    """Lines and bytes (newline included) by service: access lines and the rest apart."""
    figures: dict[str, Any] = {}
    for service in SERVICES:
        lines = captured.lines[service]
        access = [line for line in lines if '"logger":"shorty.request"' in line]
        other = [line for line in lines if line not in access]
        figures[service] = {
            "lines": len(lines),
            "bytes": sum(_size(line) for line in lines),
            "access_lines": len(access),
            "bytes_per_access_line": _mean(access),
            "bytes_per_other_line": _mean(other),
        }
    figures["redirects_followed"] = captured.redirects
    return figures


def _size(line: str) -> int:
    return len(line.encode()) + 1


def _mean(lines: list[str]) -> int | None:
    return round(sum(_size(line) for line in lines) / len(lines)) if lines else None


if __name__ == "__main__":
    main(sys.argv[1:])
