"""The audit log: every change staff make to articles and gaps, who made it and when.

Rows are only ever added. Actions (ACTIONS) name what happened; `article` is the slug it
happened to (after a rename, the new one; the detail names the old) and `gap_id` the gap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from kb.storage.database import Database
from kb.storage.schema import audit

ACTIONS = {
    "create": "created an article", "save": "saved an article", "publish": "published an article",
    "unpublish": "took an article back to draft", "archive": "archived an article",
    "restore": "restored an archived article", "rename": "renamed an article's slug",
    "revert": "restored an earlier version", "upload": "uploaded an image",
    "gap-link": "linked a gap to an article", "gap-replay": "replayed a gap", "gap-status": "changed a gap's status",
}
DETAIL_CHARS = 2000


@dataclass(frozen=True)
class Actor:
    """Who did it: the staff member's id and email."""

    user_id: int | None
    email: str


@dataclass(frozen=True)
class Entry:
    """One audit row."""

    id: int
    ts: float
    email: str
    action: str
    article: str
    gap_id: int | None
    detail: str


def record(db: Database, actor: Actor, action: str, *, article: str = "", gap_id: int | None = None,
           detail: str = "") -> None:
    """Add one row (committed before this returns)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    db.insert(audit, {"ts": time.time(), "user_id": actor.user_id, "email": actor.email, "action": action,
                      "article": article, "gap_id": gap_id, "detail": detail[:DETAIL_CHARS]})


def entries(db: Database, *, article: str | None = None, limit: int = 500) -> list[Entry]:
    """The newest rows first, optionally only those about one article."""
    query = select(audit).order_by(audit.c.ts.desc(), audit.c.id.desc()).limit(limit)
    if article:
        query = query.where(audit.c.article == article)
    return [Entry(r["id"], r["ts"], r["email"], r["action"], r["article"], r["gap_id"], r["detail"])
            for r in db.query(query)]
