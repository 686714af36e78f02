"""Server-side SVG charts (pygal) for the dashboard and the gap board: readable without JS."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pygal
from pygal.style import Style

from kb.insight.stats import Stats

STYLE = Style(
    background="white", plot_background="white", foreground="#222", foreground_strong="#111",
    foreground_subtle="#666", colors=("#1f5fbf", "#2e8b57", "#c0392b", "#8e44ad"),
    font_family="system-ui, sans-serif", label_font_size=11, major_label_font_size=11,
    legend_font_size=12, title_font_size=14,
)


SCRIPT = re.compile(rb"<script\b[^>]*>.*?</script>", re.S)


def _config(**extra) -> pygal.Config:
    """No external JavaScript (tooltips need it; the charts are readable without), our style."""
    return pygal.Config(js=[], style=STYLE, **extra)


def _strip(svg: bytes) -> bytes:
    """Drop the inline config script pygal always writes: the SVG is static."""
    return SCRIPT.sub(b"", svg)


# A chart draws at most about this many points: a 10-year range drawn per day was 3.3 MB of SVG.
DAYS_DRAWN = 92
WEEKS_DRAWN = 105


def per_period(daily: list[dict]) -> tuple[str, list[dict]]:
    """The daily rows summed per day, week (from Monday) or month, whichever keeps the chart small."""
    if len(daily) <= DAYS_DRAWN:
        return "day", daily
    unit = "week" if len(daily) <= WEEKS_DRAWN * 7 else "month"
    buckets: dict[str, dict] = {}
    for row in daily:
        day = date.fromisoformat(row["day"])
        key = (day - timedelta(days=day.weekday())).isoformat() if unit == "week" else day.isoformat()[:7]
        bucket = buckets.setdefault(key, {"day": key, "requests": 0, "deflections": 0, "tickets": 0})
        for name in ("requests", "deflections", "tickets"):
            bucket[name] += row[name]
    return unit, list(buckets.values())


def daily(stats: Stats) -> bytes:
    """Requests, deflections and tickets per day (per week or month over long ranges), as a line chart."""
    unit, rows = per_period(stats.daily)
    days = [d["day"] for d in rows]
    chart = pygal.Line(_config(
        title=f"Per {unit}: requests, deflections, tickets", x_label_rotation=30, show_minor_x_labels=False,
        x_labels_major_every=max(1, len(days) // 8), truncate_label=-1, dots_size=2, height=320, width=900,
        legend_at_bottom=True, show_y_guides=True,
    ))
    chart.x_labels = days
    for key, name in (("requests", "Requests"), ("deflections", "Deflections"), ("tickets", "Tickets")):
        chart.add(name, [d[key] for d in rows])
    return _strip(chart.render())


def funnel(stats: Stats) -> bytes:
    """The session funnel as horizontal bars (easier to read than a pygal funnel)."""
    chart = pygal.HorizontalBar(_config(
        title="Funnel (sessions)", height=300, width=900, show_legend=False, print_values=True,
        truncate_label=-1,
    ))
    chart.x_labels = [step for step, _ in reversed(stats.funnel)]
    chart.add("Sessions", [n for _, n in reversed(stats.funnel)])
    return _strip(chart.render())


def sparkline(counts: list[int]) -> bytes:
    """A small line of daily counts (the 30-day trend of a gap)."""
    chart = pygal.Line(_config(
        width=240, height=48, show_legend=False, show_x_labels=False, show_y_labels=False,
        show_dots=False, margin=2, spacing=0, fill=True, explicit_size=True,
    ))
    chart.add("misses", counts or [0])
    return _strip(chart.render_sparkline(width=240, height=48, show_dots=False, fill=True, style=STYLE,
                                         js=[], explicit_size=True))
