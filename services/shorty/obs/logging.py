"""ECS JSON logs on stdout, one object per line, for Filebeat to ship."""

from __future__ import annotations

import logging
import sys

import ecs_logging


def _drop_color(record: logging.LogRecord) -> bool:
    record.__dict__.pop("color_message", None)  # uvicorn's ANSI copy of the message
    return True


def configure_logging(level: str, service: str) -> None:
    """Send every log record (ours, uvicorn's, alembic's) to stdout as ECS JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        ecs_logging.StdlibFormatter(
            extra={"service.name": f"shorty-{service}"},
            exclude_fields=["log.original", "process", "log.origin"],
        )
    )
    handler.addFilter(_drop_color)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log would duplicate ours; its error log goes to root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = name != "uvicorn.access"
