"""Charts drawn on the server as inline SVG: readable without JavaScript, allowed by
the pages' Content-Security-Policy (attributes and the stylesheet's classes, no
inline style), and each with its numbers in a table beside it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 720, 240
_LEFT, _BOTTOM, _TOP, _RIGHT = 48, 28, 12, 8


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str  # under the bar (every few)
    title: str  # the whole bucket, for the bar's tooltip
    people: int
    bots: int


def nice_ceiling(value: int) -> int:
    """The top of the y axis: the smallest of 4, 8, 12 or 20 times a power of ten at or
    above ``value`` (at least 4), so each of its four steps is a whole, round number."""
    power = 1
    while True:
        for step in (4, 8, 12, 20):
            if step * power >= value:
                return step * power
        power *= 10


def clicks_over_time(buckets: Sequence[Bucket], title: str, chart_id: str) -> Markup:
    """Stacked bars, people below and bots above, with a y axis of four steps."""
    top = nice_ceiling(max((b.people + b.bots for b in buckets), default=0))
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(buckets), 1)
    bar = max(step * 0.8, 1.0)
    every = max(1, math.ceil(len(buckets) / 8))  # at most eight labels under the bars
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-labelledby="{chart_id}-t {chart_id}-d" preserveAspectRatio="none">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{_describe(buckets)}'
        " The table beside it has every number.</desc>",
    ]
    for i in range(5):
        value = top * i // 4  # whole: top is a multiple of 4
        y = _TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>'
        )
    for i, bucket in enumerate(buckets):
        x = _LEFT + i * step + (step - bar) / 2
        people_h = plot_h * bucket.people / top
        bots_h = plot_h * bucket.bots / top
        base = _TOP + plot_h
        tip = f"{bucket.title}: {bucket.people} by people, {bucket.bots} by bots"
        parts.append(f"<g><title>{escape(tip)}</title>")
        if bucket.people:
            parts.append(
                f'<rect class="people" x="{x:.1f}" y="{base - people_h:.1f}"'
                f' width="{bar:.1f}" height="{people_h:.1f}"/>'
            )
        if bucket.bots:
            parts.append(
                f'<rect class="bots" x="{x:.1f}" y="{base - people_h - bots_h:.1f}"'
                f' width="{bar:.1f}" height="{bots_h:.1f}"/>'
            )
        parts.append("</g>")
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{x + bar / 2:.1f}" y="{HEIGHT - 8}"'
                f' text-anchor="middle">{escape(bucket.label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it is escaped above


def _describe(buckets: Sequence[Bucket]) -> str:
    people = sum(b.people for b in buckets)
    bots = sum(b.bots for b in buckets)
    if not buckets:
        return "No buckets."
    peak = max(buckets, key=lambda b: b.people + b.bots)
    return escape(
        f"{people} clicks by people and {bots} by bots over {len(buckets)} buckets,"
        f" most in {peak.title} ({peak.people + peak.bots})."
    )


def share_bar(value: int, most: int, label: str) -> Markup:
    """A bar as long as ``value``'s share of ``most``, for a row of a top list."""
    width = 0.0 if most <= 0 else 100 * value / most
    return Markup(  # noqa: S704 - numbers and an escaped label only
        f'<svg class="share" viewBox="0 0 100 10" preserveAspectRatio="none" role="img"'
        f' aria-label="{escape(label)}"><rect class="people" x="0" y="0" width="{width:.1f}"'
        f' height="10"/></svg>'
    )
