"""Content gaps: what people asked that the KB did not answer, grouped by meaning, then replayed.

Misses (``collect_misses``) are settled requests (kb/storage/settle.py: what people asked, not
the prefixes typed on the way) below the confidence threshold, "No" feedback, tickets and searches
whose results nobody clicked; one request counts once. A miss's locale is the
language of its text (search/language.py), the locale it was recorded with only breaking ties,
so the same Russian request typed in the English UI joins the Russian gap. ``refresh_gaps`` clusters
the misses of each locale with the search embedder (average-linkage agglomerative clustering on
cosine distance: a topic's misses are on average at least ``gap_similarity`` alike) and keeps
topics of at least ``gap_min_misses`` misses. New clusters are matched to existing gaps by
centroid similarity, so a gap keeps its id, status, link and replay figures across refreshes.

Impact = sum over a gap's misses of exp(-age_days / 14): a miss today weighs 1, two weeks ago
0.37, six weeks ago 0.05, so the board favours what is hurting now.

Tables (kb/storage/schema.py): ``gaps``, ``gap_misses`` (membership, one row per miss) and
``gap_runs`` (one row per refresh). Replay lives in kb/insight/board.py.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, delete, exists, func, select, update

from search.language import detect, pick

from kb.errors import NotFoundError
from kb.settings import Settings
from kb.storage import schema
from kb.storage.database import Database
from kb.storage.locks import held
from kb.storage.settle import explicit_ends, settle

STATUSES = ("open", "planned", "resolved", "dismissed")
KINDS = {"unanswered": "no confident answer", "feedback_no": "answered “No”",
         "ticket": "ticket filed", "no_click": "results not clicked"}
HALF_LIFE_DAYS = 14.0  # the e-folding time of impact (documented above)
MATCH_SIMILARITY = 0.8  # a new cluster inherits an old gap's identity above this centroid cosine
DAY = 86400.0
MAX_TEXTS = 4000  # distinct miss texts clustered per locale (the most frequent)


@dataclass(frozen=True)
class Miss:
    """One request the KB failed: its text, locale, time and session."""

    key: str
    kind: str
    text: str
    locale: str
    ts: float
    session: str
    comment: str = ""


@dataclass
class Cluster:
    """A group of misses about one topic, before it is stored as a gap."""

    locale: str
    misses: list[Miss]
    centroid: np.ndarray
    label: str
    key_terms: list[str] = field(default_factory=list)


def _clean(text: str | None, limit: int) -> str:
    return re.sub(r"\s+", " ", text or "").strip()[:limit]


def collect_misses(db: Database, settings: Settings, since: float, until: float | None = None) -> list[Miss]:
    """Every miss in [since, until): one per request (the first reason wins), then by time."""
    until = until if until is not None else time.time() + 1
    limit, default = settings.max_query_chars, settings.default_locale
    out: dict[str, Miss] = {}

    def add(key: str, kind: str, text: str, locale: str, ts: float, session: str, comment: str = "") -> None:
        text = _clean(text, limit)
        if text and key not in out:  # the language is the text's own: one gap whatever the UI said
            out[key] = Miss(key, kind, text, pick(detect(text), locale or default), ts, session or "", _clean(comment, 2000))

    r, f, t, e = schema.requests, schema.feedback, schema.tickets, schema.events
    # Misses are settled requests (kb/storage/settle.py), never the prefixes typed on the way to one.
    # A refresh is a snapshot: a request typed a moment ago counts with its text so far (the dashboard
    # waits for it to settle instead), so a writer who refreshes right after a miss sees it.
    tickets = [dict(row) for row in db.query(select(t.c.id, t.c.ts, t.c.subject, t.c.body, t.c.locale, t.c.session,
                                                    t.c.request_id).where(t.c.ts >= since, t.c.ts < until))]
    ends = explicit_ends([dict(row) for row in db.query(select(e.c.type, e.c.request_id, e.c.data).where(
        e.c.request_id != "", e.c.ts >= since, e.c.ts < until))], tickets)
    settled = settle([dict(row) for row in db.query(select(r.c.id, r.c.ts, r.c.query, r.c.locale, r.c.session,
                                                           r.c.answered, r.c.kind).where(r.c.ts >= since, r.c.ts < until))],
                     ends, session_idle=settings.session_idle_minutes * 60.0)
    owner = {rid: s.id for s in settled for rid in s.ids}  # a prefix's id -> its settled request
    for s in settled:
        if not s.answered:
            session = "" if s.session.startswith("request:") else s.session
            add("request:" + s.id, "unanswered", s.query, s.locale, s.ts, session)
    for row in db.query(select(f.c.id, f.c.ts, f.c.request_id, f.c.slug, f.c.query, f.c.comment, f.c.locale,
                               f.c.session).where(f.c.helpful == 0, f.c.ts >= since, f.c.ts < until)):
        text = row["query"] or row["comment"] or (row["slug"] or "").replace("-", " ")
        key = "request:" + owner.get(row["request_id"], row["request_id"]) if row["request_id"] else f"feedback:{row['id']}"
        add(key, "feedback_no", text, row["locale"], row["ts"], row["session"], row["comment"] or "")
    for ticket in tickets:
        rid = ticket["request_id"]
        text = f"{ticket['subject'] or ''}. {_clean(ticket['body'], 200)}".strip(". ")
        add("request:" + owner.get(rid, rid) if rid else f"ticket:{ticket['id']}", "ticket", text,
            ticket["locale"] or "", ticket["ts"], ticket["session"] or "")
    opened = exists().where(e.c.request_id == r.c.id, e.c.type.in_(("result_click", "suggestion_opened")))
    for row in db.query(select(r.c.id, r.c.ts, r.c.query, r.c.locale, r.c.session).where(
            r.c.kind == "search", r.c.answered == 1, r.c.results.not_in(("", "[]")), r.c.ts >= since,
            r.c.ts < until, ~opened)):
        add("request:" + row["id"], "no_click", row["query"], row["locale"], row["ts"], row["session"])
    return sorted(out.values(), key=lambda m: m.ts)


def cluster_vectors(vectors: np.ndarray, weights: list[int], similarity: float, min_size: int) -> list[list[int]]:
    """Groups of row indexes whose total weight (misses) is at least min_size, largest first."""
    n = len(vectors)
    if n == 0:
        return []
    if n == 1:
        labels = np.zeros(1, dtype=int)
    else:
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(
            n_clusters=None, metric="cosine", linkage="average", distance_threshold=1.0 - similarity,
        ).fit(vectors).labels_
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    keep = [g for g in groups.values() if sum(weights[i] for i in g) >= min_size]
    return sorted(keep, key=lambda g: -sum(weights[i] for i in g))


def _key_terms(texts: list[str], groups: list[list[int]], locale: str, k: int = 5) -> list[list[str]]:
    """Top tf-idf terms of each group (idf over all misses of the locale)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        vec = TfidfVectorizer(stop_words="english" if locale == "en" else None, sublinear_tf=True)
        matrix = vec.fit_transform(texts)
    except ValueError:  # only stop words
        return [[] for _ in groups]
    terms = vec.get_feature_names_out()
    out = []
    for g in groups:
        scores = np.asarray(matrix[g].sum(axis=0)).ravel()
        out.append([str(terms[i]) for i in scores.argsort()[::-1][:k] if scores[i] > 0])
    return out


def build_clusters(misses: list[Miss], embedder, settings: Settings) -> list[Cluster]:
    """Cluster each locale's misses by meaning; label each cluster by its most central request."""
    clusters: list[Cluster] = []
    for locale in sorted({m.locale for m in misses}):
        own = [m for m in misses if m.locale == locale]
        counts = Counter(m.text.lower() for m in own)
        # Agglomerative clustering is quadratic in memory: cluster the most frequent texts only.
        texts = sorted(t for t, _ in counts.most_common(MAX_TEXTS))
        weights = [counts[t] for t in texts]
        vectors = np.asarray(embedder.encode_queries(texts), dtype=np.float32)
        groups = cluster_vectors(vectors, weights, settings.gap_similarity, settings.gap_min_misses)
        terms = _key_terms(texts, groups, locale)
        for g, key_terms in zip(groups, terms):
            centre = np.average(vectors[g], axis=0, weights=[weights[i] for i in g])
            centre = centre / max(float(np.linalg.norm(centre)), 1e-9)
            members = {texts[i] for i in g}
            rep = texts[g[int(np.argmax(vectors[g] @ centre))]]
            label = next(m.text for m in own if m.text.lower() == rep)
            clusters.append(Cluster(locale, [m for m in own if m.text.lower() in members],
                                    centre.astype(np.float32), label, key_terms))
    return clusters


def _by_centrality(c: Cluster) -> list[str]:
    """The cluster's distinct texts, the label first (the rest in time order)."""
    return list(dict.fromkeys([c.label] + [m.text for m in c.misses]))


def impact(misses: list[Miss], now: float) -> float:
    """Sum of exp(-age_days / 14) over the misses."""
    return sum(math.exp(-max(0.0, now - m.ts) / DAY / HALF_LIFE_DAYS) for m in misses)


def _match(clusters: list[Cluster], old: list[dict]) -> dict[int, int]:
    """Cluster index → existing gap id, greedily by centroid similarity within a locale."""
    pairs = []
    for ci, c in enumerate(clusters):
        for row in old:
            if row["locale"] == c.locale and row["centroid"]:
                sim = float(np.frombuffer(row["centroid"], dtype=np.float32) @ c.centroid)
                if sim >= MATCH_SIMILARITY:
                    pairs.append((sim, ci, row["id"]))
    taken: dict[int, int] = {}
    used: set[int] = set()
    for _sim, ci, gid in sorted(pairs, reverse=True):
        if ci not in taken and gid not in used:
            taken[ci] = gid
            used.add(gid)
    return taken


def refresh_gaps(db: Database, settings: Settings, desk, now: float | None = None) -> dict:
    """Recompute the gaps from the misses of the last gap_window_days; returns a summary.

    One refresh at a time across every process sharing the database: two that both read the old
    gaps before either stored its clusters would each insert the same new gaps.
    """
    with held(db, "gap-refresh"):
        started = time.time()
        now = now if now is not None else started
        misses = collect_misses(db, settings, now - settings.gap_window_days * DAY, now + 1)
        clusters = build_clusters(misses, desk.library.index.embedder, settings) if misses else []
        closest = [_closest(desk, _by_centrality(c)) for c in clusters]
        g = schema.gaps
        old = [dict(r) for r in db.query(select(g.c.id, g.c.locale, g.c.centroid))]
        matched = _match(clusters, old)
        with db.write() as conn:
            conn.execute(update(g).values(active=0, size=0, impact=0))
            conn.execute(delete(schema.gap_misses))
            for ci, c in enumerate(clusters):
                gid = _store(conn, c, closest[ci], matched.get(ci), now)
                conn.execute(schema.gap_misses.insert(), [
                    {"gap_id": gid, "miss_key": m.key, "kind": m.kind, "text": m.text, "locale": m.locale,
                     "ts": m.ts, "session": m.session, "comment": m.comment} for m in c.misses])
            conn.execute(schema.gap_runs.insert().values(ts=now, misses=len(misses), gaps=len(clusters),
                                                         seconds=time.time() - started))
    return {"misses": len(misses), "gaps": len(clusters), "kept": len(matched), "seconds": round(time.time() - started, 2)}


def _closest(desk, texts: list[str], sample: int = 20) -> tuple[str, str, float, str]:
    """The article the index most often ranks first for the gap's requests (up to `sample` of
    them, the label first), its mean confidence over them (0 where it is not in the top 3), and
    the fix: "improve" it when that mean reaches the answer threshold, else "write" a new one.

    One request alone is a noisy probe (a confident wrong answer to the label would say
    "improve the printer article" for a coffee-machine gap); the mean over the gap is steadier.
    """
    runs = [desk.replay(t, k=3) for t in texts[:sample]]
    firsts = [r.hits[0].doc_id for r in runs if r.hits]
    if not firsts:
        return "", "", 0.0, "write"
    slug = max(dict.fromkeys(firsts), key=firsts.count)  # ties: the more central request wins
    confidence = sum(next((h.confidence for h in r.hits if h.doc_id == slug), 0.0) for r in runs) / len(runs)
    article = desk.library.articles.get(slug)
    fix = "improve" if confidence >= runs[0].threshold else "write"
    return slug, article.title if article else slug, round(float(confidence), 4), fix


def _store(conn: Connection, c: Cluster, closest: tuple[str, str, float, str], gap_id: int | None, now: float) -> int:
    values = {
        "label": c.label, "key_terms": json.dumps(c.key_terms, ensure_ascii=False), "locale": c.locale,
        "first_seen": min(m.ts for m in c.misses), "last_seen": max(m.ts for m in c.misses),
        "size": len(c.misses), "sessions": len({m.session or m.key for m in c.misses}),
        "impact": round(impact(c.misses, now), 4), "centroid": c.centroid.tobytes(),
        "closest_slug": closest[0], "closest_title": closest[1], "closest_confidence": closest[2],
        "fix": closest[3], "active": 1, "refreshed_at": now,
    }
    g = schema.gaps
    if gap_id is not None:
        conn.execute(update(g).where(g.c.id == gap_id).values(**values))
        return gap_id
    values.update(status="open", linked_slug="", created=now)
    return int(conn.execute(g.insert().values(**values).returning(g.c.id)).scalar_one())


def last_refresh(db: Database) -> float | None:
    """When the gaps were last recomputed (None: never)."""
    return db.scalar(select(func.max(schema.gap_runs.c.ts)))


def get_raw(db: Database, gap_id: int) -> dict:
    """One gap row as a dict; NotFoundError if there is none."""
    if not 0 < gap_id < 2**63:  # ids are 64-bit database keys: anything else names no gap
        raise NotFoundError(f"No gap {gap_id}.")
    row = db.one(select(schema.gaps).where(schema.gaps.c.id == gap_id))
    if row is None:
        raise NotFoundError(f"No gap {gap_id}.")
    return dict(row)
