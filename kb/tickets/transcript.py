"""A ticket's transcript: what the person asked in the session before filing it, and which answers
they were shown, opened and rejected, as an agent reads a conversation.

Requests are settled requests (kb/storage/settle.py), the ones the owner's figures and the gaps
count, not every typing pause: "my", "my laptop", "my laptop screen is cracked" typed with pauses
is one request carrying the last text and the fields of its last row (what was shown for it),
plus ``typed_rows`` (how many logged rows it folded), ``folded`` (the earlier rows' ids, oldest
first) and ``started`` (when its first row was logged). Filing a ticket ends the request it names,
as explicit_ends does for every stored ticket afterwards, and a request still being typed when the
ticket is filed counts as settled at filing time: the agent sees what the person had typed.

Events keep their fields, with one change: an event whose ``request_id`` named a folded row (an
answer opened while the person typed on) carries the id of the settled request it belongs to, and
the row it named in ``prefix_id``, so every event lands on a request of the transcript.

Transcripts stored before requests were settled (2026-11-29) list every logged row and have none
of the new fields; readers take ``typed_rows`` as 1 and ``folded`` as empty.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Select, select

from kb.storage import schema
from kb.storage.database import Database
from kb.storage.settle import ENDING_EVENTS, SIGNAL_EVENTS, Settled, explicit_ends, settle

EVENTS = ("request_settled", "suggestions_shown", "suggestion_opened", "feedback", "ticket_started",
          "article_view", "result_click")
LIMIT = 200  # settled requests and events each; a session is attacker-controlled input
# Logged rows read to find those requests: five pauses a request on average before older ones drop out.
ROWS_READ = 5 * LIMIT


def _newest_first_then_in_order(query: Select, limit: int) -> Select:
    """The newest `limit` rows of a query on ts, returned oldest first."""
    newest = query.order_by(query.selected_columns.ts.desc()).limit(limit).subquery()
    return select(newest).order_by(newest.c.ts)


def transcript(db: Database, session: str, request_id: str = "", since: float = 0.0, *,
               session_idle: float = 1800.0) -> dict[str, list]:
    """The session's settled requests (with the answers shown for each) and its funnel events.

    Only the session's own requests: `request_id` is added (when older than `since` or past the
    newest LIMIT) only if it belongs to the same session. Without a session, nothing: a request id
    alone (they appear in /go?r= links) never attaches someone else's text.
    """
    if not session:
        return {"requests": [], "events": []}
    r = schema.requests
    light = (r.c.id, r.c.ts, r.c.kind, r.c.query, r.c.session, r.c.answered)
    rows = [dict(row) for row in db.query(_newest_first_then_in_order(
        select(*light).where(r.c.session == session, r.c.ts >= since), ROWS_READ))]
    if request_id and not any(row["id"] == request_id for row in rows):
        named = db.one(select(*light).where(r.c.id == request_id, r.c.session == session))
        rows += [dict(named)] if named is not None else []
    ends = _ends(db, session, [row["id"] for row in rows]) | ({request_id} if request_id else set())
    # now=None: the ticket is filed now, so whatever is being typed has settled.
    settled = settle(rows, ends, session_idle=session_idle)
    kept = [s for n, s in enumerate(settled) if n >= len(settled) - LIMIT or s.id == request_id]
    return {"requests": _requests(db, kept), "events": _events(db, session, since, kept)}


def _ends(db: Database, session: str, ids: list[str]) -> set[str]:
    """The ids among `ids` after which the person ended the request (kb/storage/settle.py)."""
    if not ids:
        return set()
    e = schema.events
    rows = db.query(select(e.c.type, e.c.request_id, e.c.data).where(
        e.c.session == session, e.c.request_id.in_(ids), e.c.type.in_(ENDING_EVENTS + SIGNAL_EVENTS))
        .order_by(e.c.ts.desc()).limit(2 * ROWS_READ))
    return explicit_ends([dict(row) for row in rows])


def _requests(db: Database, kept: list[Settled]) -> list[dict[str, Any]]:
    r = schema.requests
    full = {row["id"]: row for row in db.query(select(
        r.c.id, r.c.ts, r.c.kind, r.c.query, r.c.locale, r.c.answered, r.c.top_confidence, r.c.fallback,
        r.c.results).where(r.c.id.in_([s.id for s in kept])))} if kept else {}
    return [{"id": row["id"], "ts": row["ts"], "kind": row["kind"], "query": row["query"], "locale": row["locale"],
             "answered": bool(row["answered"]), "top_confidence": row["top_confidence"],
             "fallback": bool(row["fallback"]), "results": loads(row["results"], []),
             "typed_rows": len(s.ids), "folded": list(s.ids[:-1]), "started": s.started}
            for s in kept if (row := full.get(s.id)) is not None]


def _events(db: Database, session: str, since: float, kept: list[Settled]) -> list[dict[str, Any]]:
    e = schema.events
    owner = {rid: s.id for s in kept for rid in s.ids}
    out = []
    for row in db.query(_newest_first_then_in_order(
            select(e.c.ts, e.c.type, e.c.request_id, e.c.slug, e.c.data)
            .where(e.c.session == session, e.c.ts >= since, e.c.type.in_(EVENTS)), LIMIT)):
        named = row["request_id"] or ""
        event = {"ts": row["ts"], "type": row["type"], "request_id": owner.get(named, named), "slug": row["slug"] or "",
                 "data": loads(row["data"], {})}
        out.append({**event, "prefix_id": named} if event["request_id"] != named else event)
    return out


def loads(text: str | None, default: Any) -> Any:
    """A JSON column's value, or `default` when it is empty or not JSON."""
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default
