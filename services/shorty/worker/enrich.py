"""What the worker adds to a click: browser, OS and device family, bot flag, country.

Browser, OS and device come from ua-parser (its Rust resolver when installed),
cached per user-agent string, since a handful of agents make most traffic.
Country comes from a MaxMind-format database (GeoLite2/GeoIP2 Country or City,
or DB-IP's free one) when ``SHORTY_GEOIP_DATABASE`` names one; without it, or
for a network it does not know, the country is unknown (NULL), never an error.
The redirect only hands over the visitor's network (/24 or /48), which is used
here and then forgotten: no address reaches PostgreSQL.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from ua_parser import parse

from shorty.core.bots import is_bot

log = logging.getLogger(__name__)
UNKNOWN = "Other"


class Agent(NamedTuple):
    is_bot: bool
    browser: str
    os: str
    device: str


@lru_cache(maxsize=20_000)
def describe_agent(user_agent: str) -> Agent:
    result = parse(user_agent) if user_agent else None
    browser = result.user_agent.family if result and result.user_agent else UNKNOWN
    os = result.os.family if result and result.os else UNKNOWN
    device = result.device.family if result and result.device else UNKNOWN
    bot = is_bot(user_agent) or device == "Spider"
    return Agent(bot, browser[:100], os[:100], device[:100])


class GeoIP:
    """Country lookups in a MaxMind-format database; ``None`` path: always unknown."""

    def __init__(self, path: Path | None) -> None:
        self._reader: Any = None
        if path is None:
            return
        import maxminddb

        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError) as exc:
            # Counting clicks matters more than their countries: carry on without.
            log.error("GeoIP database %s unreadable (%s); countries stay unknown", path, exc)

    @property
    def enabled(self) -> bool:
        return self._reader is not None

    def country(self, network: str) -> str | None:
        if self._reader is None or not network:
            return None
        try:
            record = self._reader.get(network)
        except ValueError:  # not an address
            return None
        if not isinstance(record, dict):
            return None
        country = record.get("country") or record.get("registered_country") or {}
        code = country.get("iso_code") if isinstance(country, dict) else None
        return code if isinstance(code, str) and len(code) == 2 else None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
