"""How helpful readers found each article: the "Was this helpful?" answers, per slug (all time)."""

from __future__ import annotations

from sqlalchemy import func, select

from kb.storage.database import Database
from kb.storage.schema import feedback


def helpfulness(db: Database) -> dict[str, tuple[int, int]]:
    """slug -> (yes, no) over every answer ever given on it (widget and article page)."""
    query = (select(feedback.c.slug, feedback.c.helpful, func.count().label("n"))
             .where(feedback.c.slug != "").group_by(feedback.c.slug, feedback.c.helpful))
    out: dict[str, tuple[int, int]] = {}
    for r in db.query(query):
        yes, no = out.get(r["slug"], (0, 0))
        out[r["slug"]] = (yes + r["n"], no) if r["helpful"] else (yes, no + r["n"])
    return out
