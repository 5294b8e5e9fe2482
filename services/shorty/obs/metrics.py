"""Prometheus metrics of the services, served on a port of their own (exposition.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Defined apart so that the operator exports them alone; importable from here too.
from shorty.obs.breakermetrics import BREAKER_STATE as BREAKER_STATE
from shorty.obs.breakermetrics import BREAKER_TRANSITIONS as BREAKER_TRANSITIONS
from shorty.obs.buildinfo import BUILD as BUILD

# Every label of a request is bounded (obs/requestlog.py): the route's template, never
# its path; the method one of METHODS or "other"; the status the app sent.
REQUEST_SECONDS = Histogram(
    "shorty_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["service", "route", "method", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PROBLEMS = Counter(
    "shorty_http_problems_total",
    "Responses answered with an application/problem+json, by problem type (its slug;"
    ' "other" for one outside web/problems.py\'s catalogue).',
    ["service", "type"],
)
LOOKUPS = Counter(
    "shorty_redirect_lookups_total",
    "Redirect lookups by the tier that answered them and what it said.",
    ["tier", "result"],  # tier: lru, redis, postgres; result: hit, absent
)
STALE_SERVED = Counter(
    "shorty_redirect_stale_total",
    "Redirect lookups answered from a cached copy past its freshness because PostgreSQL"
    " could not be reached (redirect/outage.py).",
    ["tier"],  # lru, redis
)
REDIS_SKIPPED = Counter(
    "shorty_redis_skipped_total",
    "Redis calls skipped because the Redis breaker is open (cache/guard.py).",
)
REDIS_ERRORS = Counter(
    "shorty_redis_errors_total",
    "Redis calls that failed, counted by the Redis breaker (cache/guard.py).",
)
INVALIDATION_LISTENER_ERRORS = Counter(
    "shorty_invalidation_listener_errors_total",
    "Unexpected errors (a bug) that broke a redirect replica's invalidation"
    " subscription; it was made again and the LRU cleared (cache/invalidation.py).",
)
CLICKS_BUFFERED = Gauge(
    "shorty_click_buffer_size", "Clicks waiting in memory to be written to Redis."
)
CLICKS_FLUSHED = Counter("shorty_clicks_flushed_total", "Clicks written to the Redis stream.")
CLICKS_DROPPED = Counter(
    "shorty_clicks_dropped_total", "Clicks lost because the buffer was full (oldest first)."
)
RATE_LIMIT_DECISIONS = Counter(
    "shorty_ratelimit_decisions_total",
    "Rate-limit checks, by decision: allowed, or limited (answered 429).",
    ["service", "decision"],
)
SHED = Counter(
    "shorty_shed_requests_total",
    "Requests answered 503 at once because a bound of work in flight was reached"
    " (web/shedding.py).",
    ["service", "bound"],  # bound: requests (SHORTY_MAX_IN_FLIGHT), lookups (the redirect's)
)
DEADLINE_EXCEEDED = Counter(
    "shorty_deadline_exceeded_total",
    "Requests answered 503 because their budget (SHORTY_API_DEADLINE,"
    " SHORTY_REDIRECT_DEADLINE) ran out (resilience/deadline.py).",
    ["service"],
)
IN_FLIGHT = Gauge(
    "shorty_http_requests_in_flight",
    "HTTP requests a process is working on (probes not counted); read at scrape time.",
    ["service"],
)
LOOP_LAG = Gauge(
    "shorty_event_loop_lag_seconds",
    "How far the event loop is behind its heartbeat (web/liveness.py); read at scrape time.",
)
RATE_LIMIT_FALLBACK = Counter(
    "shorty_ratelimit_fallback_total",
    "Rate-limit checks decided in process because Redis could not answer.",
)

# The worker's pipeline.
STREAM_BATCH = Histogram(
    "shorty_stream_batch_size",
    "Entries a consumer handled in one batch.",
    ["stream", "group"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000),
)
STREAM_ENTRIES = Counter(
    "shorty_stream_entries_total",
    "Stream entries handled, by outcome: done, retried (failed, tried again later), "
    "dead (moved to the dead-letter stream).",
    ["stream", "group", "outcome"],
)
STREAM_LENGTH = Gauge("shorty_stream_length", "Entries in a Redis stream.", ["stream"])
STREAM_HELD_BACK = Counter(
    "shorty_stream_held_back_total",
    "Reads of new entries a consumer skipped because as many failed entries as it may"
    " hold (SHORTY_MAX_RETRYING) wait for their retry: the new ones wait in the stream.",
    ["stream", "group"],
)
STREAM_PENDING = Gauge(
    "shorty_stream_pending",
    "Entries delivered to a group but not yet acknowledged.",
    ["stream", "group"],
)
STREAM_LAG = Gauge(
    "shorty_stream_lag", "Entries not yet delivered to a group.", ["stream", "group"]
)
STREAM_LAG_SECONDS = Gauge(
    "shorty_stream_lag_seconds",
    "Age of the oldest entry not yet delivered to a group (0: none).",
    ["stream", "group"],
)
DLQ_LENGTH = Gauge("shorty_dlq_length", "Entries in the dead-letter stream.")
CLICKS_INGESTED = Counter(
    "shorty_clicks_ingested_total", "Clicks stored in PostgreSQL by the worker."
)
OUTBOX_PUBLISHED = Counter(
    "shorty_outbox_published_total", "Outbox events published to the events stream."
)
OUTBOX_WAITING = Gauge("shorty_outbox_unpublished", "Outbox events not yet published.")
CLICKS_ROLLED_UP = Counter(
    "shorty_clicks_rolled_up_total", "Clicks folded into the hourly rollups by the aggregator."
)
OUTBOX_OLDEST_AGE = Gauge(
    "shorty_outbox_oldest_age_seconds",
    "Age of the oldest outbox event not yet published (0: none).",
)
ROLLUP_WAITING = Gauge(
    "shorty_rollup_waiting_clicks", "Clicks stored but not yet in the rollups (the stats lag)."
)
ROLLUP_DELAY = Gauge(
    "shorty_rollup_delay_seconds",
    "Age (since the click) of the oldest click stored but not yet in the rollups (0: none).",
)

# Fault injection (resilience/faults.py): off unless SHORTY_CHAOS_ENABLED.
CHAOS_ACTIVE = Gauge(
    "shorty_chaos_active",
    "1 while a fault-injection experiment is applied in this process, by dependency and kind.",
    ["dependency", "kind"],  # dependency: postgres, redis; kind: latency, error, outage
)
CHAOS_INJECTED = Counter(
    "shorty_chaos_injected_total",
    "Calls a fault-injection experiment delayed (latency) or failed (error, outage).",
    ["dependency", "kind"],
)
