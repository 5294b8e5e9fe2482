"""The ``OTEL_*`` variables, read and checked before OpenTelemetry's SDK is imported
(it reads some itself as it is: a bad span limit fails that import).

``read_settings`` is what Shorty makes of them (docs/observability.md, "Traces"):
the exporters, the sampler and its ratio, the SDK on or off. It also checks the
variables OpenTelemetry's SDK, exporter and propagators read by themselves: left to
them, a bad value is a traceback (a span limit or a batch size when the provider is
made; a propagator when ``opentelemetry.propagate`` is first imported), a warning and
a default (a queue size, a timeout, a compression, a header, which the warning prints
whole), or every export failing (an endpoint that is no URL). Here each is one line
naming the variable, never echoing a header's value."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from urllib.parse import urlsplit

EXPORTERS = ("otlp", "console")
SAMPLERS = {
    "always_on": (1.0, False),
    "always_off": (0.0, False),
    "traceidratio": (None, False),
    "parentbased_always_on": (1.0, True),
    "parentbased_always_off": (0.0, True),
    "parentbased_traceidratio": (None, True),
}
# The share of the traces each process starts itself, while OTEL_TRACES_SAMPLER is
# unset: the public's redirects are many and alike; the rest is what an operator reads.
DEFAULT_RATIOS = {"redirect": 0.01}
# Their callers are the public: a caller's sampled traceparent is joined but not obeyed
# (anyone could have every request traced) unless OTEL_TRACES_SAMPLER names a
# parentbased_* sampler, which is the operator saying that their callers are trusted.
PUBLIC_SERVICES = ("api", "redirect")
OTLP_PROTOCOL = "http/protobuf"
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
# Span limits: whole numbers, 0 or more (the SDK reads them whenever it makes a provider).
LIMITS = (
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)
# The batch processor's: whole numbers, 1 or more, and their SDK defaults.
BATCH = {
    "OTEL_BSP_SCHEDULE_DELAY": 5000,
    "OTEL_BSP_MAX_QUEUE_SIZE": 2048,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 512,
    "OTEL_BSP_EXPORT_TIMEOUT": 30000,
}
# The OTLP exporter's, each also as OTEL_EXPORTER_OTLP_TRACES_<suffix> (read first).
_OTLP = "OTEL_EXPORTER_OTLP_"
ENDPOINTS = (_OTLP + "ENDPOINT", _OTLP + "TRACES_ENDPOINT")
TIMEOUTS = (_OTLP + "TIMEOUT", _OTLP + "TRACES_TIMEOUT")
COMPRESSIONS = (_OTLP + "COMPRESSION", _OTLP + "TRACES_COMPRESSION")
HEADERS = (_OTLP + "HEADERS", _OTLP + "TRACES_HEADERS")
FILES = tuple(
    f"{_OTLP}{signal}{name}"
    for signal in ("", "TRACES_")
    for name in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE")
)
COMPRESSION_NAMES = ("gzip", "deflate", "none")


class TracingSettingsError(Exception):
    """Raised with one line per bad ``OTEL_*`` variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TraceSettings:
    enabled: bool  # False: OTEL_SDK_DISABLED
    exporters: tuple[str, ...]  # of EXPORTERS: the ones that run (otlp only with an endpoint)
    ratio: float  # of the traces this process starts
    parent_based: bool  # a parent's decision is followed
    trust_callers: bool = True  # a remote parent's too (else: joined, drawn at the ratio)


def read_settings(service: str, environ: Mapping[str, str]) -> TraceSettings:
    """The tracing of ``service`` (api, redirect, worker, operator) as ``environ`` sets it."""
    # OpenTelemetry's instrumentation reads the propagators even with the SDK disabled.
    problems = propagator_problems(environ)
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower()
    if disabled not in ("", "true", "false"):
        problems.append(f"OTEL_SDK_DISABLED: {disabled} is not true or false")
    enabled = disabled != "true"
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in (*EXPORTERS, "none")]
    if unknown or ("none" in names and len(names) > 1):
        problems.append(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown) or 'none with another'} is not one of"
            " otlp, console, none (a comma-separated list, or none alone)"
        )
    has_endpoint = any(environ.get(name, "").strip() for name in ENDPOINTS)
    exporters = tuple(n for n in EXPORTERS if n in names and (n != "otlp" or has_endpoint))
    if "otlp" in exporters:
        for name in _PROTOCOLS:
            protocol = environ.get(name, "").strip()
            if protocol and protocol != OTLP_PROTOCOL:
                problems.append(
                    f"{name}: {protocol} is not supported; Shorty exports OTLP over HTTP"
                    f" ({OTLP_PROTOCOL}: the collector's port 4318)"
                )
    sampler = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    ratio, parent_based = 1.0, True
    if not sampler:
        ratio = _ratio(environ, DEFAULT_RATIOS.get(service, 1.0), problems)
    elif sampler not in SAMPLERS:
        problems.append(f"OTEL_TRACES_SAMPLER: {sampler} is not one of {', '.join(SAMPLERS)}")
    else:
        fixed, parent_based = SAMPLERS[sampler]
        ratio = fixed if fixed is not None else _ratio(environ, 1.0, problems)
    if enabled:
        problems += sdk_problems(environ, otlp="otlp" in exporters)
    if problems:
        raise TracingSettingsError(problems)
    trust_callers = service not in PUBLIC_SERVICES or sampler.startswith("parentbased_")
    return TraceSettings(enabled, exporters if enabled else (), ratio, parent_based, trust_callers)


def _ratio(environ: Mapping[str, str], default: float, problems: list[str]) -> float:
    text = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not text:
        return default
    try:
        ratio = float(text)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        problems.append("OTEL_TRACES_SAMPLER_ARG: must be a number from 0 to 1")
    return ratio


def sdk_problems(environ: Mapping[str, str], *, otlp: bool) -> list[str]:
    """One line per bad variable of the SDK's in ``environ``: the span limits, and the
    OTLP exporter's and the batch processor's when ``otlp`` (else they are not used).
    The propagators are ``propagator_problems``'."""
    found = [_count(environ, name, 0) for name in LIMITS]
    if otlp:
        found += [_count(environ, name, 1) for name in BATCH]
        found.append(_batch_fits(environ))
        found += [_endpoint(environ, name) for name in ENDPOINTS]
        found += [_timeout(environ, name) for name in TIMEOUTS]
        found += [_compression(environ, name) for name in COMPRESSIONS]
        found += [_headers(environ, name) for name in HEADERS]
        found += [_file(environ, name) for name in FILES]
    return [line for line in found if line]


def propagator_problems(environ: Mapping[str, str]) -> list[str]:
    """``OTEL_PROPAGATORS``: the propagators installed (``tracecontext``, ``baggage``
    and any a package adds) or ``none``, comma-separated."""
    names = [n.strip() for n in environ.get("OTEL_PROPAGATORS", "").split(",") if n.strip()]
    if not names:  # the default: nothing to look up (every command checks at start-up)
        return []
    known = {entry.name for entry in entry_points(group="opentelemetry_propagator")}
    unknown = [name for name in names if name not in known and name.lower() != "none"]
    if not unknown:
        return []
    return [
        f"OTEL_PROPAGATORS: {', '.join(unknown)} is not one of"
        f" {', '.join(sorted(known | {'none'}))} (a comma-separated list)"
    ]


def _set(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _count(environ: Mapping[str, str], name: str, least: int) -> str:
    text = _set(environ, name)
    if not text or (text.isdigit() and int(text) >= least):
        return ""
    return f"{name}: {text} is not a whole number, {least} or more"


def _batch_fits(environ: Mapping[str, str]) -> str:
    sizes = {}
    for name in ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_MAX_QUEUE_SIZE"):
        text = _set(environ, name)
        sizes[name] = int(text) if text.isdigit() else BATCH[name]
    batch, queue = sizes.values()
    if batch <= queue:
        return ""
    return (
        f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE: {batch} is more than the queue holds"
        f" (OTEL_BSP_MAX_QUEUE_SIZE, {queue})"
    )


def _endpoint(environ: Mapping[str, str], name: str) -> str:
    text = _set(environ, name)
    if not text:
        return ""
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        valid = valid and not any(c.isspace() for c in text) and parts.port != 0
    except ValueError:  # a port that is no number
        valid = False
    if valid:
        return ""
    return f"{name}: {text} is not an http:// or https:// URL (e.g. http://otel-collector:4318)"


def _timeout(environ: Mapping[str, str], name: str) -> str:
    text = _set(environ, name)
    if not text:
        return ""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if 0 < seconds < float("inf"):
        return ""
    return f"{name}: {text} is not a number of seconds above 0"


def _compression(environ: Mapping[str, str], name: str) -> str:
    text = _set(environ, name)
    if not text or text.lower() in COMPRESSION_NAMES:
        return ""
    return f"{name}: {text} is not one of {', '.join(COMPRESSION_NAMES)}"


def _headers(environ: Mapping[str, str], name: str) -> str:
    """Each entry ``name=value``; the line never shows a value (it may be a token)."""
    entries = [e.strip() for e in environ.get(name, "").split(",")]
    bad = [n for n, e in enumerate(entries, 1) if e and not e.split("=", 1)[0].strip()]
    bad += [n for n, e in enumerate(entries, 1) if e and "=" not in e]
    if not bad:
        return ""
    return (
        f"{name}: entry {min(bad)} is not name=value (a comma-separated list, values"
        " URL-encoded: authorization=Bearer%20...)"
    )


def _file(environ: Mapping[str, str], name: str) -> str:
    path = _set(environ, name)
    if not path or os.path.isfile(path):
        return ""
    return f"{name}: {path} is not a file"
