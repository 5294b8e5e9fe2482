"""ECS JSON logs on stdout, one object per line, for Filebeat to ship.

Every field a line carries is an ECS field or lives under ``shorty.*``
(tests/elk checks the captured lines against the ECS reference): the names our
code passes in ``extra=`` are written that way, and ``_ecs_fields`` renames what
libraries add — kopf's object reference becomes ``orchestrator.*``, kopf's
internals are dropped, anything else lands under ``shorty.<name>``. A line
written inside a span carries its ``trace.id`` and ``span.id`` (the request's, the
consumed batch's, the reconcile's), so that it leads to its trace.
"""

from __future__ import annotations

import logging
import sys

import ecs_logging
from opentelemetry import trace

from shorty.obs import tracecontext
from shorty.obs.logthrottle import Throttle

# What a LogRecord carries by itself; any other attribute came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
# kopf's ``k8s_ref`` (the object a line is about), as ECS names it.
_KUBERNETES_REF = (
    ("apiVersion", "orchestrator.api_version"),
    ("kind", "orchestrator.resource.type"),
    ("namespace", "orchestrator.namespace"),
    ("name", "orchestrator.resource.name"),
    ("uid", "orchestrator.resource.id"),
)
# Library extras that are noise in a log line: uvicorn's ANSI copy of the message,
# kopf's settings repr (kilobytes a line) and its internal skip flag.
_DROPPED = ("color_message", "settings", "k8s_skip")


def _ecs_fields(record: logging.LogRecord) -> bool:
    fields = record.__dict__
    for name in _DROPPED:
        fields.pop(name, None)
    ref = fields.pop("k8s_ref", None)
    if isinstance(ref, dict):
        for key, field in _KUBERNETES_REF:
            if ref.get(key):
                fields[field] = ref[key]
    for name in [n for n in fields if n not in _RECORD_FIELDS and "." not in n]:
        fields[f"shorty.{name}"] = fields.pop(name)
    span = trace.get_current_span().get_span_context()
    if span.is_valid and "trace.id" not in fields:
        fields["trace.id"], fields["span.id"] = tracecontext.ids(span)
    return True


def configure_logging(level: str, service: str) -> None:
    """Send every log record (ours, uvicorn's, alembic's, kopf's) to stdout as ECS JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        ecs_logging.StdlibFormatter(
            extra={"service.name": f"shorty-{service}"},
            exclude_fields=["log.original", "process", "log.origin"],
        )
    )
    handler.addFilter(Throttle())  # OpenTelemetry's: one line a minute per logger
    handler.addFilter(_ecs_fields)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log would duplicate ours; its error log goes to root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = name != "uvicorn.access"
    # aiohttp's access log is the operator's probes (/healthz, /metrics): noise.
    logging.getLogger("aiohttp.access").setLevel(max(logging.WARNING, root.level))
