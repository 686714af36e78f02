"""Deterministic synthetic knowledge bases, typing workloads and full-text baselines for `kb bench`.

A synthetic article recombines sections of real texts: the bundled articles' `##` sections and
the public eval sets' articles (../shared/eval/*/articles.jsonl, skipped when absent; only the
English sets, so the corpus is the one earlier bench runs measured: the Russian hwu_ru came later). Article i
takes a title and intro from one source and 2–5 sections from others, chosen by a seeded RNG,
with the company and product names varied, so every run with the same seed writes the same files.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "articles"
EVAL_DIR = ROOT.parent / "shared" / "eval"
COMPANIES = ("Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adatum", "Proseware", "Wingtip")
CATEGORIES = ("accounts", "network", "email", "hardware", "software", "facilities", "hr", "security")
TYPED = ("vpn error 809", "reset my password", "printer on floor 3 not printing", "outlook keeps asking for password",
         "book a meeting room", "laptop screen broken", "request admin rights", "mfa prompt not arriving",
         "shared drive access denied", "wifi keeps disconnecting", "how do i take annual leave",
         "teams camera not working", "не работает vpn", "забыл пароль")


@dataclass(frozen=True)
class Source:
    """One source text: a title, an intro and its (heading, Markdown body) sections."""

    title: str
    intro: str
    sections: tuple[tuple[str, str], ...]
    locale: str
    aliases: tuple[str, ...] = ()


def _split(body: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parts = re.split(r"^## +(.+)$", body, flags=re.M)
    intro = parts[0].strip()
    sections = tuple((parts[i].strip(), parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2) if parts[i + 1].strip())
    return intro, sections


def sources() -> list[Source]:
    """The bundled articles and, when present, the eval sets' articles."""
    import yaml

    out: list[Source] = []
    for path in sorted(BUNDLED.glob("*.md")):
        _, front, body = path.read_text().split("---", 2)
        meta = yaml.safe_load(front)
        intro, sections = _split(body)
        out.append(Source(meta["title"], intro, sections, meta.get("locale", "en"), tuple(meta.get("aliases") or ())))
    for path in english_sets("articles.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            intro, sections = _split(record["body"])
            if not sections:  # a flat body becomes one section under the title
                sections, intro = ((record["title"], intro),), ""
            out.append(Source(record["title"], intro, sections, "en"))
    return out


def english_sets(name: str) -> list[Path]:
    """The eval sets' files `name` whose articles are in English (by search/language.py)."""
    from kb.measure.calibrate import language_of, read_jsonl

    out = []
    for folder in sorted(p.parent for p in EVAL_DIR.glob("*/articles.jsonl")) if EVAL_DIR.is_dir() else []:
        records = read_jsonl(folder / "articles.jsonl")
        if language_of([f"{r['title']}. {r['body'][:300]}" for r in records]) == "en" and (folder / name).exists():
            out.append(folder / name)
    return out


def _vary(text: str, company: str) -> str:
    return text.replace("Northwind", company).replace("northwind", company.lower())


def write_corpus(n: int, directory: Path, seed: int = 7) -> dict:
    """Write n synthetic Markdown articles into directory; return what went in."""
    rng = random.Random(f"{seed}:{n}")
    pool = sources()
    by_locale = {loc: [s for s in pool if s.locale == loc] for loc in {s.locale for s in pool}}
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        locale = "ru" if rng.random() < 0.1 and by_locale.get("ru") else "en"
        head = rng.choice(by_locale[locale])
        company = rng.choice(COMPANIES)
        picked = [src.sections[0] for src in rng.sample(by_locale[locale], k=4) if src.sections]
        sections = list(head.sections[: rng.randint(1, 3)]) + picked[: rng.randint(1, 3)]
        title = f"{head.title} ({company} {i})"
        aliases = list(rng.sample(head.aliases, k=min(len(head.aliases), 2)))
        body = "\n\n".join([_vary(head.intro, company)] + [f"## {h}\n\n{_vary(t, company)}" for h, t in sections])
        front = {"title": title, "slug": f"bench-{i:05d}", "category": rng.choice(CATEGORIES), "tags": [company.lower()],
                 "locale": locale, "status": "published", "updated": "2026-01-01", "aliases": aliases}
        (directory / f"bench-{i:05d}.md").write_text("---\n" + json.dumps(front, ensure_ascii=False) + "\n---\n" + body + "\n")
    return {"articles": n, "seed": seed, "sources": len(pool), "eval_sets": EVAL_DIR.is_dir()}


def prefixes(query: str) -> list[str]:
    """What a user's as-you-type requests look like: every few characters, then the whole query."""
    cuts = sorted({c for c in range(4, len(query), 4)} | {m.start() for m in re.finditer(" ", query) if m.start() >= 3})
    return [query[:c].strip() for c in cuts if query[:c].strip()] + [query]


@dataclass(frozen=True)
class Workload:
    """Query streams: typing sessions (with repeats of popular queries) and unique queries."""

    typing: list[str]
    typing_other: list[str]
    unique: list[str]

    @classmethod
    def build(cls, settings: Settings, n: int, seed: int = 7) -> "Workload":
        """Real phrasings from the eval sets and typical IT requests, some typed prefix by prefix."""
        rng = random.Random(seed)
        phrasings = list(TYPED)
        for path in english_sets("queries.jsonl"):
            rows = [json.loads(ln) for ln in path.read_text().splitlines()]
            phrasings += [r["query"] for r in rng.sample(rows, k=min(300, len(rows)))]
        popular = phrasings[:40]

        def stream(size: int) -> list[str]:
            out: list[str] = []
            while len(out) < size:
                q = rng.choice(popular) if rng.random() < 0.3 else rng.choice(phrasings)
                out += prefixes(q) if rng.random() < 0.5 else [q]
            return out[:size]

        # the floor and the uncached path are timed on the same kind of requests as the servers
        unique = list(dict.fromkeys(stream(max(50, n // 2))))
        return cls(stream(n), stream(n * 4), unique)


def _passages(articles: Path) -> list[tuple[str, str, str]]:
    from kb.content.articles import Article, load_dir

    return [(a.title, s.heading, s.text) for a in load_dir(articles).articles if isinstance(a, Article)
            for s in a.sections]


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 and mean of seconds, in milliseconds."""
    if not samples:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "mean": float("nan")}
    ms = np.asarray(samples) * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": len(ms), "p50": round(float(p50), 2), "p95": round(float(p95), 2),
            "p99": round(float(p99), 2), "mean": round(float(ms.mean()), 2)}


def _timed(search, queries: list[str]) -> dict:
    lat = []
    for q in queries:
        started = time.perf_counter()
        search(q)
        lat.append(time.perf_counter() - started)
    return percentiles(lat)


def fts5_baseline(articles: Path, queries: list[str]) -> dict:
    """SQLite FTS5 (porter stemmer, bm25 ranking) over the same passages: top 3 per query."""
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE VIRTUAL TABLE p USING fts5(title, heading, body, tokenize='porter unicode61')")
    db.executemany("INSERT INTO p VALUES (?, ?, ?)", _passages(articles))

    def search(q: str) -> list:
        words = re.findall(r"\w+", q.lower())
        if not words:
            return []
        match = " OR ".join([f'"{w}"' for w in words[:-1]] + [f'"{words[-1]}"*'])  # last word may be half-typed
        return db.execute("SELECT title, heading, snippet(p, 2, '[', ']', '…', 24) FROM p WHERE p MATCH ? "
                          "ORDER BY bm25(p) LIMIT 3", (match,)).fetchall()

    result = _timed(search, queries)
    db.close()
    return result


def tantivy_baseline(articles: Path, queries: list[str]) -> dict | None:
    """tantivy (BM25) over the same passages, if the optional package is installed."""
    try:
        import tantivy
    except ImportError:
        return None
    builder = tantivy.SchemaBuilder()
    for name in ("title", "heading", "body"):
        builder.add_text_field(name, stored=True, tokenizer_name="en_stem")
    schema = builder.build()
    index = tantivy.Index(schema)
    writer = index.writer()
    for title, heading, body in _passages(articles):
        writer.add_document(tantivy.Document(title=title, heading=heading, body=body))
    writer.commit()
    index.reload()
    searcher = index.searcher()

    def search(q: str) -> list:
        words = re.findall(r"\w+", q.lower())
        if not words:
            return []
        query = index.parse_query(" ".join(words), ["title", "heading", "body"])
        return [searcher.doc(addr)["title"] for _, addr in searcher.search(query, 3).hits]

    return _timed(search, queries)
