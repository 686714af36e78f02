"""Owner dashboard metrics, computed here (never in templates) from the event log.

Periods are whole UTC days: `since` 00:00 to the end of `until` (inclusive dates). Every figure
carries the definition the dashboard shows beside it (see DEFINITIONS and ../shared/anchors.md).

Sessions: a request without a session id counts as its own session. A deflection is counted at
most once per session, explicit first, and only for sessions with a request in the period, so the
deflection rate is never above 100 %.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from kb.errors import ValidationError
from kb.settings import Settings
from kb.storage import schema
from kb.storage.database import Database

DAY = 86400.0
OPENS = ("suggestion_opened", "result_click")
ENGAGED = ("suggestion_opened", "result_click", "article_view", "feedback")
DEFINITIONS = {
    "requests": "Suggest and search requests received (widget, API and portal search).",
    "sessions_with_request": "Distinct sessions with at least one request (a request without a session id"
                             " counts as its own session).",
    "help_center_sessions": "Distinct sessions with any request or event.",
    "explicit_deflections": "Sessions where the user marked a suggestion as the solution (“Yes, this solved it”):"
                            " helpful feedback on a suggestion, or a positive feedback event. Once per session.",
    "implicit_deflections": "Sessions without an explicit deflection where a suggestion was opened (opened, clicked,"
                            " or an article viewed after a request) and no ticket came from that session between"
                            " the first opening and {w} h after the last. A ticket at exactly {w} h still counts as"
                            " following (inclusive); one at {w} h + 1 s does not. Sessions whose window is still"
                            " open are pending, not counted.",
    "pending_implicit": "Sessions with an opened suggestion whose {w} h window has not closed yet.",
    "tickets": "Tickets created in the period.",
    "deflection_rate": "(explicit + implicit deflections) / sessions with at least one request.",
    "self_service_score": "Help-center sessions / users who filed tickets (distinct ticket emails, else sessions),"
                          " e.g. 4:1 (Zendesk).",
    "unsuccessful_searches": "Requests with no confident result, or whose results nobody opened, clicked or rated"
                             " (SearchUnify, ServiceNow).",
    "top_requests": "Requests grouped by normalised text (lower case, single spaces, no trailing punctuation);"
                    " answered share = above the confidence threshold.",
    "articles": "Views = article_view events; yes/no = feedback; deflections attributed = deflected sessions"
                " credited to the article confirmed (explicit) or last opened (implicit); tickets after viewing ="
                " sessions that opened or viewed the article and later filed a ticket.",
    "funnel": "Help-center sessions → sessions with a request → sessions that opened a suggestion → deflected"
              " sessions; and sessions that filed a ticket.",
}


@dataclass(frozen=True)
class Period:
    """Whole UTC days from `start` to `end` inclusive, as [since, until) timestamps."""

    start: date
    end: date

    @property
    def since(self) -> float:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=timezone.utc).timestamp()

    @property
    def until(self) -> float:
        return self.since + ((self.end - self.start).days + 1) * DAY

    def days(self) -> list[str]:
        return [(self.start + timedelta(days=i)).isoformat() for i in range((self.end - self.start).days + 1)]


def period(since: str | date | None = None, until: str | date | None = None, today: date | None = None) -> Period:
    """Parse YYYY-MM-DD bounds; defaults: the last 30 days up to today (UTC)."""
    try:
        end = until if isinstance(until, date) else date.fromisoformat(until) if until else None
        start = since if isinstance(since, date) else date.fromisoformat(since) if since else None
    except ValueError:
        raise ValidationError([{"key": "since", "message": "dates are YYYY-MM-DD"}], message="Dates are YYYY-MM-DD.")
    end = end or today or datetime.now(timezone.utc).date()
    if start is None:
        start = end - timedelta(days=29) if end > date.min + timedelta(days=29) else date.min
    if start > end or (end - start).days > 3660:
        raise ValidationError([{"key": "since", "message": "since must be on or before until, within 10 years"}],
                              message="The date range is not valid.")
    return Period(start, end)


@dataclass
class Stats:
    """Every dashboard figure for one period."""

    period: Period
    figures: dict[str, float | int | None]
    daily: list[dict]
    funnel: list[tuple[str, int]]
    top_requests: list[dict]
    articles: list[dict]
    window_hours: int
    definitions: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"since": self.period.start.isoformat(), "until": self.period.end.isoformat(),
                "implicit_window_hours": self.window_hours, "figures": self.figures,
                "display": display(self.figures), "definitions": self.definitions, "daily": self.daily,
                "funnel": [{"step": s, "sessions": n} for s, n in self.funnel],
                "top_requests": self.top_requests, "articles": self.articles}


LABELS = {
    "requests": "Requests", "sessions_with_request": "Sessions with a request",
    "help_center_sessions": "Help-center sessions", "explicit_deflections": "Explicit deflections",
    "implicit_deflections": "Implicit deflections", "pending_implicit": "Pending (window open)",
    "tickets": "Tickets", "deflection_rate": "Deflection rate", "self_service_score": "Self-service score",
    "unsuccessful_searches": "Unsuccessful searches",
}


def display(figures: dict) -> dict[str, str]:
    """Figures formatted for people: a rate as a percentage, the score as N:1, missing as —."""
    out = {}
    for key, value in figures.items():
        if value is None:
            out[key] = "—"
        elif key == "deflection_rate":
            out[key] = f"{value * 100:.1f} %"
        elif key == "self_service_score":
            out[key] = f"{value:g}:1"
        else:
            out[key] = f"{value:,}"
    total = figures.get("unsuccessful_searches")
    if total:
        out["unsuccessful_searches"] += (f" ({figures['unsuccessful_no_result']:,} no result,"
                                         f" {figures['unsuccessful_no_click']:,} no click)")
    return out


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).date().isoformat()


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation."""
    return re.sub(r"\s+", " ", text or "").strip().lower().strip(".,;:!?¿¡…\"'() ")


def _tickets(db: Database, since: float) -> list[dict]:
    """Tickets from `since` on."""
    t = schema.tickets
    return [dict(r) for r in db.query(select(t.c.id, t.c.ts, t.c.session, t.c.email).where(t.c.ts >= since))]


def compute(db: Database, settings: Settings, span: Period, now: float) -> Stats:
    """All figures for the period; `now` decides which implicit windows have closed."""
    lo, hi, window = span.since, span.until, settings.implicit_window_hours * 3600
    rq, ev, fb = schema.requests, schema.events, schema.feedback
    requests = [dict(row) for row in db.query(select(rq.c.id, rq.c.ts, rq.c.session, rq.c.query, rq.c.answered)
                                              .where(rq.c.ts >= lo, rq.c.ts < hi).order_by(rq.c.ts))]
    events = [dict(row) for row in db.query(select(ev.c.ts, ev.c.session, ev.c.type, ev.c.request_id, ev.c.slug,
                                                   ev.c.data).where(ev.c.ts >= lo, ev.c.ts < hi).order_by(ev.c.ts))]
    feedback = [dict(row) for row in db.query(
        select(fb.c.ts, fb.c.request_id, fb.c.slug, fb.c.helpful, fb.c.session, rq.c.session.label("request_session"))
        .join_from(fb, rq, rq.c.id == fb.c.request_id, isouter=True).where(fb.c.ts >= lo, fb.c.ts < hi))]
    tickets = _tickets(db, lo)
    first_request: dict[str, float] = {}
    for r in requests:
        first_request.setdefault(r["session"] or "request:" + r["id"], r["ts"])

    explicit: dict[str, tuple[float, str]] = {}
    for f in feedback:
        key = f["session"] or f["request_session"] or ("request:" + f["request_id"] if f["request_id"] else "")
        if f["helpful"] and f["request_id"] and key in first_request:
            explicit.setdefault(key, (f["ts"], f["slug"] or ""))
    for e in events:
        if e["type"] == "feedback" and json.loads(e["data"] or "{}").get("helpful") is True and e["session"] in first_request:
            explicit.setdefault(e["session"], (e["ts"], e["slug"] or ""))

    opens: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for e in events:
        s = e["session"]
        if s in first_request and (e["type"] in OPENS or (e["type"] == "article_view" and e["ts"] >= first_request[s])):
            opens[s].append((e["ts"], e["slug"] or ""))
    ticket_times: dict[str, list[float]] = defaultdict(list)
    for t in tickets:
        if t.get("session"):
            ticket_times[t["session"]].append(t["ts"])

    implicit: dict[str, tuple[float, str]] = {}
    pending = 0
    for s, seen in opens.items():
        if s in explicit:
            continue
        first, last = seen[0][0], seen[-1][0]
        if last + window > now:
            pending += 1
        elif not any(first <= t <= last + window for t in ticket_times.get(s, [])):
            implicit[s] = seen[-1]

    in_period = [t for t in tickets if lo <= t["ts"] < hi]
    users = {(t.get("email") or "").strip().lower() or t.get("session") or str(t["id"]) for t in in_period}
    hc_sessions = set(first_request) | {e["session"] for e in events if e["session"]}
    engaged = {e["request_id"] for e in events if e["type"] in ENGAGED and e["request_id"]}
    engaged |= {f["request_id"] for f in feedback if f["request_id"]}
    no_result = sum(1 for r in requests if not r["answered"])
    no_click = sum(1 for r in requests if r["answered"] and r["id"] not in engaged)
    with_request = len(first_request)
    deflected = len(explicit) + len(implicit)
    figures = {
        "requests": len(requests), "sessions_with_request": with_request,
        "help_center_sessions": len(hc_sessions), "explicit_deflections": len(explicit),
        "implicit_deflections": len(implicit), "pending_implicit": pending, "tickets": len(in_period),
        "deflection_rate": round(deflected / with_request, 4) if with_request else None,
        "self_service_score": round(len(hc_sessions) / len(users), 2) if users else None,
        "unsuccessful_searches": no_result + no_click, "unsuccessful_no_result": no_result,
        "unsuccessful_no_click": no_click,
    }
    daily = _daily(span, requests, explicit, implicit, in_period)
    funnel = [("Help-center sessions", len(hc_sessions)), ("Sessions with a request", with_request),
              ("Opened a suggestion", len(set(opens) | set(explicit))), ("Deflected", deflected),
              ("Filed a ticket", len({t.get("session") or str(t["id"]) for t in in_period}))]
    articles = _articles(events, feedback, explicit, implicit, opens, ticket_times)
    defs = {k: v.format(w=settings.implicit_window_hours) for k, v in DEFINITIONS.items()}
    return Stats(span, figures, daily, funnel, _top_requests(requests), articles, settings.implicit_window_hours, defs)


def _daily(span: Period, requests: list[dict], explicit: dict, implicit: dict, tickets: list[dict]) -> list[dict]:
    rows: dict[str, dict[str, Any]] = {d: {"day": d, "requests": 0, "deflections": 0, "tickets": 0} for d in span.days()}
    for items, column in ((requests, "requests"), (tickets, "tickets")):
        for item in items:
            rows[_day(item["ts"])][column] += 1
    for ts, _slug in list(explicit.values()) + list(implicit.values()):
        if _day(ts) in rows:
            rows[_day(ts)]["deflections"] += 1
    return list(rows.values())


def _top_requests(requests: list[dict], limit: int = 20) -> list[dict]:
    counts: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    for r in requests:
        text = normalise(r["query"])
        counts[text] += 1
        answered[text] += 1 if r["answered"] else 0
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [{"request": t, "count": n, "answered_share": round(answered[t] / n, 4)} for t, n in top]


def _articles(events, feedback, explicit, implicit, opens, ticket_times) -> list[dict]:
    rows: dict[str, dict] = {}

    def row(slug: str) -> dict:
        return rows.setdefault(slug, {"slug": slug, "views": 0, "yes": 0, "no": 0, "deflections": 0,
                                      "tickets_after_viewing": 0})

    viewed: dict[str, dict[str, float]] = defaultdict(dict)  # slug -> session -> first view
    for e in events:
        if e["slug"] and e["type"] in ("article_view",) + OPENS:
            if e["type"] == "article_view":
                row(e["slug"])["views"] += 1
            if e["session"]:
                viewed[e["slug"]].setdefault(e["session"], e["ts"])
    for f in feedback:
        if f["slug"]:
            row(f["slug"])["yes" if f["helpful"] else "no"] += 1
    for _ts, slug in list(explicit.values()) + list(implicit.values()):
        if slug:
            row(slug)["deflections"] += 1
    for slug, sessions in viewed.items():
        after = sum(1 for s, ts in sessions.items() if any(t > ts for t in ticket_times.get(s, [])))
        row(slug)["tickets_after_viewing"] = after
    return sorted(rows.values(), key=lambda r: (-r["views"], -r["deflections"], r["slug"]))


def tables(stats: Stats) -> dict[str, tuple[list[str], list[list]]]:
    """Every dashboard table as (header, rows), for CSV export."""
    figures = [[k, v, stats.definitions.get(k, "")] for k, v in stats.figures.items()]
    return {
        "figures": (["figure", "value", "definition"], figures),
        "daily": (["day", "requests", "deflections", "tickets"], [list(d.values()) for d in stats.daily]),
        "funnel": (["step", "sessions"], [list(s) for s in stats.funnel]),
        "top_requests": (["request", "count", "answered_share"], [list(r.values()) for r in stats.top_requests]),
        "articles": (["slug", "views", "yes", "no", "deflections", "tickets_after_viewing"],
                     [list(r.values()) for r in stats.articles]),
    }
