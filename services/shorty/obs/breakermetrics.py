"""The circuit breakers' metrics, apart from the services' (``obs/metrics.py``): the
operator's process uses the same breaker (around its calls to the API) and should
export these two, not every service metric at zero."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

BREAKER_STATE = Gauge(
    "shorty_breaker_state",
    "State of a dependency's circuit breaker: 0 closed, 1 open, 2 half-open"
    " (resilience/breaker.py).",
    ["dependency"],  # postgres, redis; api in the operator
)
BREAKER_TRANSITIONS = Counter(
    "shorty_breaker_transitions_total",
    "Circuit breaker state changes, by the state entered.",
    ["dependency", "to"],  # to: closed, open, half-open
)
