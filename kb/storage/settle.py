"""What people asked and when they left: the request log grouped into settled requests and
help-center sessions. Pure functions over rows, so the SQL that feeds them stays a few lines.
The figures (kb/insight/stats.py), the gaps (kb/insight/gaps.py) and the ticket transcript
(kb/tickets/transcript.py) all count requests this way.

Settled requests. The widget asks for suggestions at every pause while someone types, so one
request typed with pauses leaves a burst of rows ("my", "my laptop", "my laptop screen is
cracked"). The rows of one session form one burst until either

- the person signals they are done: Enter, opening a suggestion or the contact form by hand,
  answering "Was this helpful?", or filing a ticket (see ``explicit_ends``); or
- they went quiet for SETTLE_SECONDS (the widget's own settle rule uses the same constant, served
  by /api/v1/widget/config) and the next text does not continue the last one, or comes more than
  CONTINUE_SECONDS later.

Slow typists. The gap between two logged rows is the pause *plus* the time it took to type the
next word, and people stop mid-sentence to think, look up an error message or pick a word on a
phone. So a text that continues the previous one (``extends``: the same words typed further, the
last one perhaps finished or corrected by a phone's autocorrect or a backspace) stays in the
burst after a pause of up to CONTINUE_SECONDS: "my laptop" typed, a 20 s pause, then "my laptop
screen is cracked" is one request, and the earlier prefix is not counted. After a longer pause,
or a text that starts over ("printer" after "vpn", or the last word replaced), it is a request
of its own. Until the next text arrives a paused prefix is counted like any settled request, so
the figures of the last few minutes can still shrink by a fold.

A burst's last text is the settled request. A portal search is a submitted form, so it is always
one request of its own, and a row without a session is its own burst. A burst whose last row is
younger than SETTLE_SECONDS (and not explicitly ended) is still being typed: it is left out
until it settles.

Help-center sessions (Help Scout's definition): a visitor's activity with no idle gap of
``session_idle_minutes`` or more. A widget session id lives as long as the browser tab and a portal
cookie for months, so one id can hold many sessions; each gets one verdict in kb/insight/stats.py.
"""

from __future__ import annotations

import bisect
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from rapidfuzz.distance import Levenshtein

SETTLE_SECONDS = 1.5
# How long a pause may be before a text that continues the previous one is still the same request:
# ample for thinking mid-sentence or fetching an error message, well short of a new session.
CONTINUE_SECONDS = 300.0
# Widget events whose `by` says a person, not a timer, ended the request.
EXPLICIT_BY = ("enter", "contact", "no")
# Events that always end the burst of their request_id: the person acted on its answer.
ENDING_EVENTS = ("suggestion_opened", "result_click", "feedback", "ticket_created")
SIGNAL_EVENTS = ("request_settled", "ticket_started")


@dataclass(frozen=True)
class Settled:
    """One settled request: the last row of a burst, with every row id the burst holds."""

    id: str
    ids: tuple[str, ...]
    ts: float
    started: float  # the burst's first row
    session: str  # the row's session, or "request:<id>" when it had none
    query: str
    answered: bool
    kind: str
    locale: str = ""


def _data(event: Mapping[str, Any]) -> dict:
    raw = event.get("data") or {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def explicit_ends(events: Iterable[Mapping[str, Any]], tickets: Iterable[Mapping[str, Any]] = ()) -> set[str]:
    """Request ids after which a person ended the burst (events: type, request_id, data)."""
    ends = {t["request_id"] for t in tickets if t.get("request_id")}
    for e in events:
        rid = e.get("request_id")
        if not rid:
            continue
        if e["type"] in ENDING_EVENTS or (e["type"] in SIGNAL_EVENTS and _data(e).get("by") in EXPLICIT_BY):
            ends.add(rid)
    return ends


def _words(text: str) -> list[str]:
    """Text compared as people see it: one Unicode form (NFKC), case folded, split on spaces."""
    return unicodedata.normalize("NFKC", text or "").casefold().split()


def _corrected(before: str, after: str) -> bool:
    """A typo fixed: one edit in a word of 3+ letters, two in one of 8+ (Levenshtein)."""
    allowed = 2 if len(before) >= 8 else 1 if len(before) >= 3 else 0
    return allowed > 0 and Levenshtein.distance(before, after, score_cutoff=allowed) <= allowed


def extends(earlier: str, later: str) -> bool:
    """Whether `later` is `earlier` typed further (same text counts): the same words, each perhaps
    with a typo fixed, the last one perhaps still being typed."""
    before, after = _words(earlier), _words(later)
    if not before or len(after) < len(before):
        return False
    if " ".join(after).startswith(" ".join(before)):  # typing on; also texts without spaces (CJK)
        return True
    *done, last = before
    return (all(a == b or _corrected(a, b) for a, b in zip(done, after))
            and (after[len(done)].startswith(last) or _corrected(last, after[len(done)])))


def settle(rows: Iterable[Mapping[str, Any]], ends: set[str], *, now: float | None = None,
           idle: float = SETTLE_SECONDS, session_idle: float = 1800.0) -> list[Settled]:
    """Group request rows (id, ts, session, query, answered, kind[, locale]) into settled
    requests, ordered by time. `ends` comes from explicit_ends; `now` leaves out bursts still
    being typed (None keeps them all)."""
    by_session: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        key = row["session"] or "request:" + row["id"]
        by_session.setdefault(key, []).append(row)
    out: list[Settled] = []
    for session, items in by_session.items():
        items.sort(key=lambda r: r["ts"])
        burst: list[Mapping[str, Any]] = []
        for row in items:
            if burst and _ends_between(burst[-1], row, ends, idle, session_idle):
                out.append(_settled(session, burst))
                burst = []
            burst.append(row)
        last = burst[-1]
        if now is None or last["id"] in ends or last.get("kind") == "search" or last["ts"] <= now - idle:
            out.append(_settled(session, burst))
    return sorted(out, key=lambda s: s.ts)


def _ends_between(prev: Mapping[str, Any], row: Mapping[str, Any], ends: set[str], idle: float,
                  session_idle: float) -> bool:
    gap = row["ts"] - prev["ts"]
    if prev["id"] in ends or "search" in (prev.get("kind"), row.get("kind")) or gap >= session_idle:
        return True
    return gap >= idle and (gap > CONTINUE_SECONDS or not extends(prev["query"], row["query"]))


def _settled(session: str, burst: list[Mapping[str, Any]]) -> Settled:
    last = burst[-1]
    return Settled(id=last["id"], ids=tuple(r["id"] for r in burst), ts=last["ts"], started=burst[0]["ts"],
                   session=session,
                   query=last["query"], answered=bool(last["answered"]), kind=last.get("kind") or "suggest",
                   locale=last.get("locale") or "")


class Sessions:
    """Help-center sessions: each session id's activity cut wherever it was idle `idle` seconds."""

    def __init__(self, activity: Iterable[tuple[str, float]], idle: float) -> None:
        times: dict[str, list[float]] = {}
        for session, ts in activity:
            if session:
                times.setdefault(session, []).append(ts)
        self._starts: dict[str, list[float]] = {}
        for session, stamps in times.items():
            stamps.sort()
            self._starts[session] = [t for i, t in enumerate(stamps) if i == 0 or t - stamps[i - 1] >= idle]

    def of(self, session: str, ts: float) -> str:
        """The help-center session holding this moment of `session` ("" for no session)."""
        starts = self._starts.get(session)
        if not session or not starts:
            return session
        return f"{session}#{max(0, bisect.bisect_right(starts, ts) - 1)}"

    def all(self) -> list[str]:
        """Every help-center session."""
        return [f"{s}#{i}" for s, starts in self._starts.items() for i in range(len(starts))]
