"""Shed requests are logged in bulk (shorty.web.shedding.Shedder): a line at the
first, then at most one per window with the number shed since."""

import asyncio
import logging

from shorty.web import shedding


def test_a_burst_of_sheds_is_two_lines_with_its_count(monkeypatch, caplog):
    monkeypatch.setattr(shedding, "LOG_SECONDS", 0.3)
    shedder = shedding.Shedder("bench", "lookups", 7)

    async def burst() -> list[str]:
        for _ in range(100):
            shedder.shed()
        first = [r.getMessage() for r in caplog.records]
        await asyncio.sleep(1.0)  # the window ends: the rest is reported once
        return first

    with caplog.at_level(logging.WARNING, "shorty.web.shedding"):
        first = asyncio.run(burst())
    lines = [r.getMessage() for r in caplog.records if r.name == "shorty.web.shedding"]
    assert len(first) == 1
    assert first[0].startswith("bench shed 1 request(s) with 503: 7 lookups in flight")
    assert "SHORTY_MAX_LOOKUPS_IN_FLIGHT" in first[0]
    assert len(lines) == 2, lines
    assert lines[1].startswith("bench shed 99 request(s)")
