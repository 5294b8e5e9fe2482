"""``shorty elk setup``: load Shorty's Elasticsearch and Kibana configuration (the
files under ``elk/``) into a running cluster, idempotently.

``lifecycle`` reads the retention and substitutes it into the ILM policy, ``files``
reads and checks the configuration files, ``endpoint`` talks HTTP with a bound on
all waiting, and ``setup`` runs the steps in order."""

from __future__ import annotations


class SetupError(Exception):
    """An expected failure (a file missing, a server unreachable or refusing): one
    readable line, no traceback."""
