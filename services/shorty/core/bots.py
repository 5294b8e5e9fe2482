"""Which user agents are not people: crawlers, link-preview fetchers, HTTP libraries.

Clicks from them are still recorded, but marked, so analytics can leave them out.
"""

from __future__ import annotations

import re

# Crawlers, link-preview fetchers and HTTP libraries: counted, but marked.
_BOT = re.compile(
    # Named crawlers and preview fetchers (not a bare "bot" inside a word: CUBOT is a
    # phone; not "telegram" alone: Telegram's in-app browser is a person).
    r"\bbot\b|googlebot|bingbot|yandex(?:bot|images)|baiduspider|duckduckbot|applebot|slurp"
    r"|ahrefsbot|semrushbot|mj12bot|dotbot|petalbot|bytespider|gptbot|claudebot|ccbot"
    r"|facebookexternalhit|facebookcatalog|meta-externalagent|twitterbot|linkedinbot"
    r"|slackbot|discordbot|telegrambot|whatsapp/|skypeuripreview|embedly|pinterestbot"
    r"|redditbot|bitlybot|tumblr|vkshare|quora link preview|crawler|spider"
    r"|curl/|wget/|python-requests|python-urllib|httpx|aiohttp|go-http-client|okhttp"
    r"|headlesschrome|lighthouse|uptimerobot|pingdom",
    re.IGNORECASE,
)


def is_bot(user_agent: str) -> bool:
    return not user_agent or _BOT.search(user_agent) is not None
