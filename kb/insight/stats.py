"""Owner dashboard metrics, computed here (never in templates) from the event log.

Periods are whole UTC days: `since` 00:00 to the end of `until` (inclusive dates). Every figure
carries the definition the dashboard shows beside it (see DEFINITIONS and ../shared/anchors.md).

Requests are settled requests and sessions are help-center sessions (kb/storage/settle.py): a
session id is cut wherever it was idle `session_idle_minutes`, and a request without a session id
counts as its own session. Each session gets one verdict: a ticket, an explicit or an implicit
deflection (explicit first), pending, or none; only sessions with a request in the period are
judged, so the deflection rate is never above 100 %.
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
from kb.storage.settle import CONTINUE_SECONDS, SETTLE_SECONDS, Sessions, Settled, explicit_ends, settle

DAY = 86400.0
OPENS = ("suggestion_opened", "result_click")
ENGAGED = ("suggestion_opened", "result_click", "article_view", "feedback")
SESSION = ("A session is one visitor's activity with no idle gap of {m} minutes or more (Help Scout); a request"
           " without a session id is a session of its own.")
DEFINITIONS = {
    "requests": "Settled requests: what people asked, not every pause while they typed. The suggest calls of a session"
                " are one request until the person presses Enter, opens a suggestion or the contact form, answers"
                " “Was this helpful?” or files a ticket, or pauses {s} s and then starts over; the request is its"
                " last text. Someone who pauses mid-sentence (up to {c} min) and types on is one request. A portal"
                " search counts once. Every call stays in the raw log (latency, debugging).",
    "sessions_with_request": "Sessions with at least one settled request. " + SESSION,
    "help_center_sessions": "Sessions with any request or event. " + SESSION,
    "explicit_deflections": "Sessions where the user marked a suggestion as the solution (“Yes, this solved it”):"
                            " helpful feedback on a suggestion, or a positive feedback event. One verdict per session:"
                            " a session in which a ticket was filed is never a deflection.",
    "implicit_deflections": "Sessions without a ticket or an explicit deflection where a suggestion was opened (opened,"
                            " clicked, or an article viewed after a request) and no ticket came from that visitor"
                            " between the first opening and {w} h after the last. A ticket at exactly {w} h still"
                            " counts as following (inclusive); one at {w} h + 1 s does not. Sessions whose window is"
                            " still open are pending, not counted.",
    "pending_implicit": "Sessions with an opened suggestion whose {w} h window has not closed yet.",
    "tickets": "Tickets created in the period.",
    "deflection_rate": "(explicit + implicit deflections) / sessions with at least one request. A session that ends in"
                       " a ticket is never a deflection.",
    "self_service_score": "Help-center sessions / users who filed tickets (distinct ticket emails, else sessions),"
                          " e.g. 4:1 (Zendesk).",
    "unsuccessful_searches": "Settled requests with no confident result, or whose results nobody opened, clicked or"
                             " rated (SearchUnify, ServiceNow).",
    "top_requests": "Settled requests grouped by normalised text (lower case, single spaces, no trailing punctuation);"
                    " answered share = above the confidence threshold.",
    "articles": "Views = article_view events; yes/no = feedback; deflections attributed = deflected sessions"
                " credited to the article confirmed (explicit) or last opened (implicit); tickets after viewing ="
                " sessions that opened or viewed the article and later filed a ticket in that same session, unless"
                " the article had been confirmed as the solution before the ticket.",
    "funnel": "Help-center sessions → sessions with a request → sessions that opened a suggestion → deflected"
              " sessions; and sessions that filed a ticket. " + SESSION,
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
    return [dict(r) for r in db.query(select(t.c.id, t.c.ts, t.c.session, t.c.email, t.c.request_id)
                                      .where(t.c.ts >= since))]


def compute(db: Database, settings: Settings, span: Period, now: float) -> Stats:
    """All figures for the period; `now` decides which implicit windows have closed."""
    lo, hi = span.since, span.until
    rq, ev, fb = schema.requests, schema.events, schema.feedback
    raw = [dict(row) for row in db.query(select(rq.c.id, rq.c.ts, rq.c.session, rq.c.query, rq.c.answered, rq.c.kind)
                                         .where(rq.c.ts >= lo, rq.c.ts < hi).order_by(rq.c.ts))]
    events = [dict(row) for row in db.query(select(ev.c.ts, ev.c.session, ev.c.type, ev.c.request_id, ev.c.slug,
                                                   ev.c.data).where(ev.c.ts >= lo, ev.c.ts < hi).order_by(ev.c.ts))]
    feedback = [dict(row) for row in db.query(
        select(fb.c.ts, fb.c.request_id, fb.c.slug, fb.c.helpful, fb.c.session, rq.c.session.label("request_session"))
        .join_from(fb, rq, rq.c.id == fb.c.request_id, isouter=True).where(fb.c.ts >= lo, fb.c.ts < hi))]
    tickets = _tickets(db, lo)
    v = Verdicts(raw, events, feedback, tickets, settings, now)
    in_period = [t for t in tickets if lo <= t["ts"] < hi]
    users = {(t.get("email") or "").strip().lower() or t.get("session") or str(t["id"]) for t in in_period}
    engaged = {e["request_id"] for e in events if e["type"] in ENGAGED and e["request_id"]}
    engaged |= {f["request_id"] for f in feedback if f["request_id"]}
    no_result = sum(1 for r in v.requests if not r.answered)
    no_click = sum(1 for r in v.requests if r.answered and engaged.isdisjoint(r.ids))
    with_request, deflected = len(v.first_request), len(v.explicit) + len(v.implicit)
    hc_sessions = set(v.first_request) | {v.sessions.of(e["session"], e["ts"]) for e in events if e["session"]}
    figures = {
        "requests": len(v.requests), "sessions_with_request": with_request,
        "help_center_sessions": len(hc_sessions), "explicit_deflections": len(v.explicit),
        "implicit_deflections": len(v.implicit), "pending_implicit": v.pending, "tickets": len(in_period),
        "deflection_rate": round(deflected / with_request, 4) if with_request else None,
        "self_service_score": round(len(hc_sessions) / len(users), 2) if users else None,
        "unsuccessful_searches": no_result + no_click, "unsuccessful_no_result": no_result,
        "unsuccessful_no_click": no_click,
    }
    daily = _daily(span, v.requests, v.explicit, v.implicit, in_period)
    funnel = [("Help-center sessions", len(hc_sessions)), ("Sessions with a request", with_request),
              ("Opened a suggestion", len(set(v.opens) | set(v.explicit))), ("Deflected", deflected),
              ("Filed a ticket", len({v.sessions.of(t.get("session") or "", t["ts"]) or str(t["id"]) for t in in_period}))]
    defs = {k: text.format(w=settings.implicit_window_hours, m=settings.session_idle_minutes, s=f"{SETTLE_SECONDS:g}",
                       c=f"{CONTINUE_SECONDS / 60:g}")
            for k, text in DEFINITIONS.items()}
    return Stats(span, figures, daily, funnel, _top_requests(v.requests), _articles(events, feedback, v),
                 settings.implicit_window_hours, defs)


class Verdicts:
    """One verdict per help-center session with a settled request: a ticket, an explicit or an
    implicit deflection, pending (its window is open), or none. A session with a ticket is never
    a deflection; an implicit one also needs no ticket from the same visitor within the window."""

    def __init__(self, raw: list[dict], events: list[dict], feedback: list[dict], tickets: list[dict],
                 settings: Settings, now: float) -> None:
        idle, window = settings.session_idle_minutes * 60.0, settings.implicit_window_hours * 3600
        self.requests = settle(raw, explicit_ends(events, tickets), now=now, session_idle=idle)
        self.sessions = Sessions([(r["session"] or "request:" + r["id"], r["ts"]) for r in raw]
                                 + [(x["session"], x["ts"]) for x in (*events, *feedback, *tickets) if x.get("session")],
                                 idle)
        of = self.sessions.of
        self.first_request: dict[str, float] = {}
        for r in self.requests:
            chain = of(r.session, r.started)
            self.first_request[chain] = min(r.started, self.first_request.get(chain, r.started))
        self.ticket_chains: dict[str, list[float]] = defaultdict(list)
        by_visitor: dict[str, list[float]] = defaultdict(list)
        for t in tickets:
            if t.get("session"):
                self.ticket_chains[of(t["session"], t["ts"])].append(t["ts"])
                by_visitor[t["session"]].append(t["ts"])
        self.helpful: dict[str, dict[str, float]] = defaultdict(dict)  # session -> slug -> when confirmed
        self.explicit = self._explicit(events, feedback)
        self.opens: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for e in events:
            chain = of(e["session"], e["ts"])
            if chain in self.first_request and (e["type"] in OPENS or (
                    e["type"] == "article_view" and e["ts"] >= self.first_request[chain])):
                self.opens[chain].append((e["ts"], e["slug"] or ""))
        self.implicit: dict[str, tuple[float, str]] = {}
        self.pending = 0
        for chain, seen in self.opens.items():
            if chain in self.explicit or chain in self.ticket_chains:
                continue
            first, last = seen[0][0], seen[-1][0]
            if any(first <= t <= last + window for t in by_visitor.get(chain.rsplit("#", 1)[0], [])):
                continue  # a ticket followed within the window: not deflected
            if last + window > now:
                self.pending += 1
            else:
                self.implicit[chain] = seen[-1]

    def _explicit(self, events: list[dict], feedback: list[dict]) -> dict[str, tuple[float, str]]:
        """Sessions where a suggestion was confirmed ("Yes, this solved it"), and no ticket was filed."""
        of = self.sessions.of
        out: dict[str, tuple[float, str]] = {}
        confirmed = [(f["session"] or f["request_session"] or ("request:" + f["request_id"] if f["request_id"] else ""),
                      f["ts"], f["slug"] or "") for f in feedback if f["helpful"] and f["request_id"]]
        confirmed += [(e["session"], e["ts"], e["slug"] or "") for e in events
                      if e["type"] == "feedback" and json.loads(e["data"] or "{}").get("helpful") is True]
        for session, ts, slug in sorted(confirmed, key=lambda c: c[1]):
            chain = of(session, ts)
            self.helpful[chain].setdefault(slug, ts)
            if chain in self.first_request and chain not in self.ticket_chains:
                out.setdefault(chain, (ts, slug))
        return out


def _daily(span: Period, requests: list[Settled], explicit: dict, implicit: dict, tickets: list[dict]) -> list[dict]:
    rows: dict[str, dict[str, Any]] = {d: {"day": d, "requests": 0, "deflections": 0, "tickets": 0} for d in span.days()}
    for ts in [r.ts for r in requests]:
        if _day(ts) in rows:
            rows[_day(ts)]["requests"] += 1
    for t in tickets:
        rows[_day(t["ts"])]["tickets"] += 1
    for ts, _slug in list(explicit.values()) + list(implicit.values()):
        if _day(ts) in rows:
            rows[_day(ts)]["deflections"] += 1
    return list(rows.values())


def _top_requests(requests: list[Settled], limit: int = 20) -> list[dict]:
    counts: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    for r in requests:
        text = normalise(r.query)
        counts[text] += 1
        answered[text] += 1 if r.answered else 0
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [{"request": t, "count": n, "answered_share": round(answered[t] / n, 4)} for t, n in top]


def _articles(events: list[dict], feedback: list[dict], v: Verdicts) -> list[dict]:
    rows: dict[str, dict] = {}

    def row(slug: str) -> dict:
        return rows.setdefault(slug, {"slug": slug, "views": 0, "yes": 0, "no": 0, "deflections": 0,
                                      "tickets_after_viewing": 0})

    viewed: dict[str, dict[str, float]] = defaultdict(dict)  # slug -> help-center session -> first view
    for e in events:
        if e["slug"] and e["type"] in ("article_view",) + OPENS:
            if e["type"] == "article_view":
                row(e["slug"])["views"] += 1
            if e["session"]:
                viewed[e["slug"]].setdefault(v.sessions.of(e["session"], e["ts"]), e["ts"])
    for f in feedback:
        if f["slug"]:
            row(f["slug"])["yes" if f["helpful"] else "no"] += 1
    for _ts, slug in list(v.explicit.values()) + list(v.implicit.values()):
        if slug:
            row(slug)["deflections"] += 1
    for slug, chains in viewed.items():
        # Only a ticket of the same session, and never to an article confirmed as the solution before it.
        row(slug)["tickets_after_viewing"] = sum(
            1 for chain, ts in chains.items()
            if any(t > ts and not v.helpful[chain].get(slug, t) < t for t in v.ticket_chains.get(chain, [])))
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
