"""The gap board: reading gaps (examples, trend) and closing the loop (link, replay, resolve).

Replay runs every miss of a gap against the live index. A miss counts as answered when the
linked article is among the top 3 hits with a confidence at or above the index's threshold.

``replay_before`` is what each miss got when it was asked, read from the results stored with its
request (a miss with no stored request, such as a ticket typed on its own, was not answered):
the order of clicks (write, index, then link) cannot spoil it. ``replay_after`` is the latest
replay, and ``replay_unanswered`` the misses it still did not answer. A gap can be resolved only
once it has a replay figure taken after its current link. ``preview`` replays a gap against a
trial build with an edited, unsaved article in it (kb/content/trial.py), before publishing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from typing import Any, Callable

from sqlalchemy import case, or_, select, update

from search.model import Results

from kb.clock import iso
from kb.content.articles import SLUG, Article, load_dir
from kb.content.trial import trial_index
from kb.errors import KbError, ValidationError
from kb.insight.gaps import DAY, KINDS, STATUSES, Miss, get_raw
from kb.serving.desk import validate_query
from kb.storage.database import Database
from kb.storage.schema import gap_misses, gaps, requests

REPLAY_TOP = 3


class ReplayRequiredError(KbError):
    """Replay the gap against the current index before marking it resolved."""

    status_code = 409


@dataclass(frozen=True)
class Gap:
    """A gap as the board shows it."""

    id: int
    label: str
    key_terms: list[str]
    status: str
    locale: str
    size: int
    sessions: int
    impact: float
    first_seen: float
    last_seen: float
    closest_slug: str
    closest_title: str
    closest_confidence: float
    linked_slug: str
    replay_total: int | None
    replay_before: int | None
    replay_after: int | None
    replayed_at: float | None
    active: bool
    fix: str  # "improve" the closest article (the index already answers the topic) or "write" one
    replay_unanswered: list[str]  # misses the latest replay did not answer

    def as_dict(self) -> dict:
        """JSON-ready, with ISO dates."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("first_seen", "last_seen", "replayed_at"):
            out[k] = iso(out[k])
        return out


def _gap(row: dict) -> Gap:
    return Gap(
        id=row["id"], label=row["label"], key_terms=json.loads(row["key_terms"] or "[]"), status=row["status"],
        locale=row["locale"], size=row["size"] or 0, sessions=row["sessions"] or 0, impact=row["impact"] or 0.0,
        first_seen=row["first_seen"], last_seen=row["last_seen"], closest_slug=row["closest_slug"] or "",
        closest_title=row["closest_title"] or "", closest_confidence=row["closest_confidence"] or 0.0,
        linked_slug=row["linked_slug"] or "", replay_total=row["replay_total"], replay_before=row["replay_before"],
        replay_after=row["replay_after"], replayed_at=row["replayed_at"], active=bool(row["active"]),
        fix=row.get("fix") or "write", replay_unanswered=json.loads(row.get("replay_unanswered") or "[]"),
    )


def list_gaps(db: Database, locale: str | None = None, status: str | None = None) -> list[Gap]:
    """Gaps present in the latest refresh (or linked ones), by impact, optionally filtered."""
    query = select(gaps).where(or_(gaps.c.active == 1, gaps.c.linked_slug != ""))
    if locale:
        query = query.where(gaps.c.locale == locale)
    if status:
        if status not in STATUSES:
            raise ValidationError([{"key": "status", "message": f"one of {', '.join(STATUSES)}"}])
        query = query.where(gaps.c.status == status)
    return [_gap(dict(r)) for r in db.query(query.order_by(gaps.c.impact.desc(), gaps.c.size.desc(), gaps.c.id))]


def get_gap(db: Database, gap_id: int) -> Gap:
    """One gap; NotFoundError if there is none."""
    return _gap(get_raw(db, gap_id))


def examples(db: Database, gap_id: int, limit: int = 20) -> list[Miss]:
    """Up to `limit` of the gap's misses, newest first, one per distinct text."""
    rows = db.query(select(gap_misses).where(gap_misses.c.gap_id == gap_id).order_by(gap_misses.c.ts.desc()))
    seen: set[str] = set()
    out: list[Miss] = []
    for r in rows:
        if r["text"].lower() not in seen and len(out) < limit:
            seen.add(r["text"].lower())
            out.append(Miss(r["miss_key"], r["kind"], r["text"], r["locale"], r["ts"], r["session"], r["comment"]))
    return out


def trend(db: Database, gap_id: int, days: int = 30, now: float | None = None) -> list[tuple[str, int]]:
    """Misses per UTC day over the last `days` days, oldest first (zeros included)."""
    today = datetime.fromtimestamp(now or time.time(), timezone.utc).date()
    start = today - timedelta(days=days - 1)
    since = datetime(start.year, start.month, start.day, tzinfo=timezone.utc).timestamp()
    counts = {d: 0 for d in ((start + timedelta(days=i)).isoformat() for i in range(days))}
    for r in db.query(select(gap_misses.c.ts).where(gap_misses.c.gap_id == gap_id, gap_misses.c.ts >= since)):
        day = datetime.fromtimestamp(r["ts"], timezone.utc).date().isoformat()
        if day in counts:
            counts[day] += 1
    return list(counts.items())


@dataclass(frozen=True)
class Outcome:
    """One miss of a gap: answered when it was asked, and answered now (or by a trial build)."""

    text: str
    before: bool
    after: bool


@dataclass(frozen=True)
class Replay:
    """A gap's misses replayed against an index for one article: the before → after figure."""

    slug: str
    outcomes: list[Outcome]

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def before(self) -> int:
        return sum(o.before for o in self.outcomes)

    @property
    def after(self) -> int:
        return sum(o.after for o in self.outcomes)

    @property
    def unanswered(self) -> list[str]:
        """The distinct misses still not answered, in the gap's order."""
        return list(dict.fromkeys(o.text for o in self.outcomes if not o.after))


def answers(results: Results, slug: str) -> bool:
    """Whether a search answers with `slug`: in the top 3, at or above the threshold."""
    return any(h.doc_id == slug and h.confidence >= results.threshold for h in results.hits[:REPLAY_TOP])


def replay_texts(desk: Any, texts: list[str], slug: str) -> int:
    """How many texts the live index now answers with `slug` confidently in its top 3."""
    return sum(answers(desk.replay(text, k=REPLAY_TOP), slug) for text in texts)


def _misses(db: Database, gap_id: int) -> list[tuple[str, str, str]]:
    """(miss key, text, locale) of every miss of the gap."""
    m = gap_misses.c
    query = select(m.miss_key, m.text, m.locale).where(m.gap_id == gap_id).order_by(m.ts)
    return [(r["miss_key"], r["text"], r["locale"] or "") for r in db.query(query)]


def _threshold(desk: Any) -> Callable[[str], float]:
    """The confidence threshold of requests in a language (calibration is per request language)."""
    index = desk.library.index
    return lambda locale: index.tuning(locale or None)[1].threshold


def answered_when_asked(db: Database, misses: list[tuple[str, str]], slug: str,
                        threshold: Callable[[str], float]) -> list[bool]:
    """For each (miss key, locale): whether its request's stored results had `slug` in the top 3
    at or above the threshold, with the request answered. Misses without a stored request (a
    ticket or feedback typed on its own) were not answered."""
    ids = [k.split(":", 1)[1] for k, _ in misses if k.startswith("request:")]
    stored: dict[str, list] = {}
    for start in range(0, len(ids), 500):
        rows = db.query(select(requests.c.id, requests.c.answered, requests.c.results)
                        .where(requests.c.id.in_(ids[start : start + 500])))
        for r in rows:
            try:
                results = json.loads(r["results"] or "[]") if r["answered"] else []
            except ValueError:
                results = []
            stored[r["id"]] = results[:REPLAY_TOP] if isinstance(results, list) else []
    out = []
    for key, locale in misses:
        hits = stored.get(key.split(":", 1)[1], []) if key.startswith("request:") else []
        out.append(any(isinstance(h, dict) and h.get("slug") == slug
                       and float(h.get("confidence") or 0) >= threshold(locale) for h in hits))
    return out


def _replay(db: Database, desk: Any, gap_id: int, slug: str, search: Callable[[str], Results]) -> Replay:
    misses = _misses(db, gap_id)
    before = answered_when_asked(db, [(k, loc) for k, _, loc in misses], slug, _threshold(desk))
    seen: dict[str, bool] = {}
    outcomes = []
    for (_key, text, _locale), was in zip(misses, before):
        if text not in seen:
            seen[text] = answers(search(text), slug)
        outcomes.append(Outcome(text, was, seen[text]))
    return Replay(slug, outcomes)


def _awaiting_index(directory: Path, slug: str) -> bool:
    """Whether a published article with this slug is written but not indexed yet."""
    if not SLUG.match(slug) or not Path(directory).is_dir():
        return False
    return any(a.slug == slug and a.published for a in load_dir(Path(directory)).articles)


def link_gap(db: Database, desk: Any, gap_id: int, slug: str) -> Gap:
    """Link a gap to an article and take the "before" figure: what its misses got when asked.

    The article may be in the live index (improve it) or written and published in the articles
    directory but not indexed yet.
    """
    get_raw(db, gap_id)
    slug = slug.strip()
    if slug not in desk.library.articles and not _awaiting_index(desk.settings.articles, slug):
        raise ValidationError([{"key": "slug", "message": f"no published article {slug!r}"}],
                              message=f"No published article {slug!r} in the index or the articles directory.")
    misses = _misses(db, gap_id)
    before = answered_when_asked(db, [(k, loc) for k, _, loc in misses], slug, _threshold(desk))
    db.execute(update(gaps).where(gaps.c.id == gap_id).values(
        linked_slug=slug, linked_at=time.time(), replay_total=len(misses), replay_before=sum(before),
        replay_after=None, replayed_at=None, replay_unanswered=None,
        status=case((gaps.c.status == "open", "planned"), else_=gaps.c.status)))
    return get_gap(db, gap_id)


def replay_gap(db: Database, desk: Any, gap_id: int) -> Gap:
    """Replay the gap's misses against the current index: the "after" figure."""
    gap = get_gap(db, gap_id)
    if not gap.linked_slug:
        raise ValidationError([{"key": "slug", "message": "link the gap to an article first"}],
                              message="Link the gap to an article before replaying it.")
    replay = _replay(db, desk, gap_id, gap.linked_slug, lambda text: desk.replay(text, k=REPLAY_TOP))
    db.execute(update(gaps).where(gaps.c.id == gap_id).values(
        replay_total=replay.total, replay_before=replay.before, replay_after=replay.after, replayed_at=time.time(),
        replay_unanswered=json.dumps(replay.unanswered, ensure_ascii=False)))
    return get_gap(db, gap_id)


def preview(db: Database, desk: Any, gap_id: int, article: Article, replaces: tuple[str, ...] = ()) -> Replay:
    """How many of the gap's misses `article` (edited, unsaved) would answer once published: a
    replay against a trial build of the live index with it in; the live index is untouched."""
    get_raw(db, gap_id)
    library = desk.library
    with trial_index(library.index, article, desk.embedder, replaces) as index:
        def search(text: str) -> Results:  # read as Desk.replay reads a request
            language, meant = desk.reading(validate_query(text, desk.settings.max_query_chars), None)
            return index.search(meant, k=REPLAY_TOP, locale=language)

        return _replay(db, desk, gap_id, article.slug, search)


def set_status(db: Database, gap_id: int, status: str) -> Gap:
    """Move a gap to a status; resolved needs a replay figure taken after the current link."""
    if status not in STATUSES:
        raise ValidationError([{"key": "status", "message": f"one of {', '.join(STATUSES)}"}])
    gap = get_gap(db, gap_id)
    if status == "resolved" and (not gap.linked_slug or gap.replay_after is None):
        raise ReplayRequiredError()
    db.execute(update(gaps).where(gaps.c.id == gap_id).values(status=status))
    return get_gap(db, gap_id)


def export_rows(gaps: list[Gap]) -> tuple[list[str], list[list]]:
    """The board as a table (header, rows) for CSV export."""
    header = ["id", "label", "key_terms", "status", "locale", "size", "sessions", "impact", "first_seen",
              "last_seen", "closest_slug", "closest_confidence", "fix", "linked_slug", "replay_total",
              "replay_before", "replay_after", "replayed_at"]
    rows = []
    for g in gaps:
        d = g.as_dict()
        d["key_terms"] = " ".join(g.key_terms)
        rows.append([d[h] for h in header])
    return header, rows


__all__ = ["Gap", "KINDS", "DAY", "list_gaps", "get_gap", "examples", "trend", "link_gap", "replay_gap",
           "set_status", "replay_texts", "export_rows", "ReplayRequiredError", "Replay", "Outcome", "preview",
           "answered_when_asked"]
