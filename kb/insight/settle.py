"""What people asked and when they left: the request log grouped into settled requests and
help-center sessions. Pure functions over rows, so the SQL that feeds them stays a few lines.

Settled requests. The widget asks for suggestions at every pause while someone types, so one
request typed with pauses leaves a burst of rows ("my", "my laptop", "my laptop screen is
cracked"). The rows of one session form one burst until either

- the person signals they are done: Enter, opening a suggestion or the contact form by hand,
  answering "Was this helpful?", or filing a ticket (see ``explicit_ends``); or
- they went quiet for SETTLE_SECONDS (the widget's own settle rule uses the same constant, served
  by /api/v1/widget/config) and the next text does not extend the last one.

The gap between two logged rows is the pause *plus* the time it took to type the next word, so a
0.7 s pause before a slowly typed word can leave a 2 s gap: a text that extends the previous one
("my laptop" after "my") therefore stays in the burst whatever the gap, within one help-center
session. A burst's last text is the settled request. A portal search is a submitted form, so it
is always one request of its own, and a row without a session is its own burst. A burst whose
last row is younger than SETTLE_SECONDS (and not explicitly ended) is still being typed: it is
left out until it settles.

Help-center sessions (Help Scout's definition): a visitor's activity with no idle gap of
``session_idle_minutes`` or more. A widget session id lives as long as the browser tab and a portal
cookie for months, so one id can hold many sessions; each gets one verdict in kb/insight/stats.py.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

SETTLE_SECONDS = 1.5
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


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip().lower()


def extends(earlier: str, later: str) -> bool:
    """Whether `later` is `earlier` typed further (same text counts)."""
    before, after = _fold(earlier), _fold(later)
    return bool(before) and after.startswith(before)


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
    return gap >= idle and not extends(prev["query"], row["query"])


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
