"""Which user agents are not people: crawlers, link-preview fetchers, HTTP libraries.

Clicks from them are still recorded, but marked, so analytics can leave them out.
"""

from __future__ import annotations

import re

# Crawlers, link-preview fetchers and HTTP libraries: counted, but marked.
_BOT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|facebookexternalhit|facebookcatalog|embedly|preview"
    r"|whatsapp|telegram|discord|slack|skypeuripreview|vkshare|pinterest|bitlybot|quora link"
    r"|curl/|wget/|python-requests|python-urllib|httpx|aiohttp|go-http-client|okhttp"
    r"|headlesschrome|lighthouse|monitor|uptime",
    re.IGNORECASE,
)


def is_bot(user_agent: str) -> bool:
    return not user_agent or _BOT.search(user_agent) is not None
