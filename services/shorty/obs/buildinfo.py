"""``shorty_build_info{service, version} 1``: which version each process runs (a
dashboard joins it to see a rollout). Apart from ``obs/metrics.py``, so that the
operator exports it without every service metric."""

from __future__ import annotations

from prometheus_client import Info

from shorty import __version__

BUILD = Info("shorty_build", "The version of Shorty a process runs (always 1).", ["service"])


def describe_build(service: str) -> None:
    """This process is ``service`` (api, redirect, worker, operator) of this version."""
    BUILD.labels(service).info({"version": __version__})
