"""What one click records: no IP address, only a salted, daily-rotating visitor hash.

The hash lets the analytics count distinct visitors per day without being
able to recognise anyone across days or recover an address.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from starlette.datastructures import Headers

STREAM = "shorty:clicks"
STREAM_MAXLEN = 1_000_000  # approximate cap, so an idle worker cannot exhaust Redis memory
DAY_MS = 86_400_000

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


def visitor_hash(secret: bytes, ip: str, user_agent: str, now_ms: int) -> str:
    day = str(now_ms // DAY_MS).encode()
    digest = hashlib.blake2b(
        b"\0".join((day, ip.encode(), user_agent.encode())), key=secret[:64], digest_size=8
    )
    return digest.hexdigest()


def click_fields(
    code: str, link_id: int, headers: Headers, ip: str, now_ms: int, secret: bytes
) -> dict[str, str]:
    referrer = headers.get("referer", "")
    try:
        referrer_host = (urlsplit(referrer).hostname or "")[:255]
    except ValueError:
        referrer_host = ""
    user_agent = headers.get("user-agent", "")[:512]
    return {
        "code": code,
        "id": str(link_id),  # so a click is never counted for a later link with the same code
        "ts": str(now_ms),
        "ref": referrer_host,
        "ua": user_agent,
        "vh": visitor_hash(secret, ip, user_agent, now_ms),
        "bot": "1" if is_bot(user_agent) else "0",
    }
