"""Fitting kb's fusion weights and answer confidence on the dev split of public datasets.

Each dataset's language comes from its text (search/language.py) unless a locale is given: its
articles are indexed in their language, and its requests' language decides which fit they join,
so "answered" is fitted per request language (Index.tuning).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from search.embed import Embedder
from search.fusion import Calibration, Fusion
from search.glossary import Glossary
from search.index import Index, crossing
from search.store import IndexStore
from search.language import detect
from search.learn import Group, fit_calibration, fit_fusion

from kb.content.articles import Article, split_sections
from kb.content.indexer import index_articles
from kb.errors import KbError

Tunings = dict[str, tuple[Fusion, Calibration]]  # request language -> fusion weights and calibration


class DatasetError(KbError):
    """The dataset directory is missing articles.jsonl or queries.jsonl"""

    status_code = 400


@dataclass
class Prepared:
    """A dataset indexed through kb's indexer, with every query encoded once."""

    name: str
    index: Index
    queries: list[dict]
    vectors: np.ndarray
    articles: list[dict] = field(default_factory=list)
    locale: str = "en"  # the requests' language
    article_locale: str = "en"
    glossed: bool = False  # the requests are searched as their gloss in the articles' language

    @property
    def searched(self) -> str:
        """Whose tuning the requests take and join: their language's, or a crossing (`ru>en`)."""
        return crossing(self.locale, self.article_locale) if self.glossed else self.locale

    def rows(self, split: str) -> list[int]:
        return [i for i, q in enumerate(self.queries) if q["split"] == split]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def language_of(texts: Sequence[str], sample: int = 300) -> str:
    """The language most of the texts are in (by search/language.py); en when none says."""
    votes = Counter(detect(t).language for t in texts[:sample])
    votes.pop("", None)
    return votes.most_common(1)[0][0] if votes else "en"


def to_articles(records: Sequence[dict], locale: str = "en") -> list[Article]:
    """Dataset articles as kb articles: slug = id, the given locale, body parsed as Markdown."""
    return [
        Article(slug=r["id"], title=r["title"], category="eval", locale=locale, status="published",
                updated="", body=r["body"], sections=tuple(split_sections(r["body"], r["title"])))
        for r in records
    ]


def dataset_name(directory: Path) -> str:
    """hwu_ru/xling_en for a nested set, clinc150 for a top-level one (as the eval README names them)."""
    directory = Path(directory).resolve()
    nested = (directory.parent / "queries.jsonl").exists() or (directory.parent / "articles.jsonl").exists()
    return f"{directory.parent.name}/{directory.name}" if nested else directory.name


def prepare(directory: Path, embedder: Embedder, workdir: Path, batch: int = 256, locale: str | None = None,
            glossary: Glossary | None = None) -> Prepared:
    """Index a dataset's articles with `kb index`'s code path and encode all its queries.

    The articles' and the requests' languages are detected from their text unless `locale` names both.
    When they differ and there is a glossary, every request is searched as its gloss in the
    articles' language (Index.gloss), as the desk searches another language's articles.
    """
    directory = Path(directory)
    if not (directory / "articles.jsonl").exists() or not (directory / "queries.jsonl").exists():
        raise DatasetError(f"{directory}: needs articles.jsonl and queries.jsonl")
    records = read_jsonl(directory / "articles.jsonl")
    queries = read_jsonl(directory / "queries.jsonl")
    texts = [q["query"] for q in queries]
    article_locale = locale or language_of([f"{r['title']}. {r['body'][:300]}" for r in records])
    query_locale = locale or language_of(texts)
    name = dataset_name(directory)
    root = workdir / name.replace("/", "__")
    index_articles(to_articles(records, article_locale), root, embedder)
    index = IndexStore(root).load(embedder, glossary=glossary)
    glossed = glossary is not None and query_locale != article_locale
    if glossed:
        texts = [index.gloss(t) or t for t in texts]
        queries = [dict(q, query=t, asked=q["query"]) for q, t in zip(queries, texts)]
    parts = [embedder.encode_queries(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    vectors = np.vstack(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)
    return Prepared(name, index, queries, vectors, records, query_locale, article_locale, glossed)


def fusion_groups(p: Prepared, split: str = "dev") -> list[Group]:
    """Candidate evidence of the split's in-scope queries, labelled with the right documents."""
    groups = []
    for i in p.rows(split):
        q = p.queries[i]
        if not q["relevant"]:
            continue
        cands = p.index.candidates(q["query"], vector=p.vectors[i])
        if cands is None:
            continue
        wanted = {p.index.doc_row[d] for d in q["relevant"] if d in p.index.doc_row}
        groups.append(Group(cands.matrix, np.isin(cands.rows, list(wanted))))
    return groups


def top_hits(p: Prepared, rows: Sequence[int], fusion: Fusion) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Top-hit features, top-1 correctness and in-scope flags for the given queries."""
    feats, correct, in_scope = [], [], []
    for i in rows:
        q = p.queries[i]
        res = p.index.search(q["query"], k=2, vector=p.vectors[i], fusion=fusion)
        feats.append(res.hits[0].features if res.hits else {})
        correct.append(bool(res.hits) and res.hits[0].doc_id in q["relevant"])
        in_scope.append(bool(q["relevant"]))
    return feats, np.array(correct, bool), np.array(in_scope, bool)


def describe(prepared: Sequence[Prepared], split: str) -> str:
    parts = []
    for p in prepared:
        rows = p.rows(split)
        oos = sum(1 for i in rows if not p.queries[i]["relevant"])
        parts.append(f"{p.name} ({len(rows)} queries, {oos} out of scope)")
    return ", ".join(parts)


def fit(prepared: Sequence[Prepared], fit_weights: bool = True, split: str = "dev") -> tuple[Fusion, Calibration]:
    """Fit fusion weights, then the two-stage confidence and threshold, on one split only."""
    fusion = fit_fusion([g for p in prepared for g in fusion_groups(p, split)]) if fit_weights else prepared[0].index.fusion
    feats, correct, in_scope = [], [], []
    for p in prepared:
        f, c, s = top_hits(p, p.rows(split), fusion)
        feats.extend(f)
        correct.append(c)
        in_scope.append(s)
    source = (
        f"kb calibrate: fusion weights by softmax likelihood of the right article, confidence = "
        f"logistic P(in scope) x logistic P(top 1 right | in scope), threshold at false-answer rate "
        f"<= 10%{' (each dataset weighing the same)' if len(prepared) > 1 else ''}; "
        f"fitted on the {split} split of {describe(prepared, split)}"
    )
    groups = np.concatenate([np.full(len(c), n) for n, c in enumerate(correct)])
    cal = fit_calibration(feats, np.concatenate(correct), np.concatenate(in_scope), source=source,
                          groups=groups if len(prepared) > 1 else None)
    return fusion, cal


def calibrate(
    directories: Sequence[Path], embedder: Embedder, fit_weights: bool = True, locale: str | None = None,
    glossary: Glossary | None = None,
) -> tuple[Tunings, list[Prepared], tempfile.TemporaryDirectory]:
    """Prepare each dataset and fit fusion and calibration on the dev splits pooled per request language."""
    work = tempfile.TemporaryDirectory(prefix="kb-calibrate-")
    prepared = [prepare(Path(d), embedder, Path(work.name), locale=locale, glossary=glossary) for d in directories]
    tunings: Tunings = {}
    for language in sorted({p.searched for p in prepared}):
        tunings[language] = fit([p for p in prepared if p.searched == language], fit_weights=fit_weights)
    return tunings, prepared, work


def default_tuning(tunings: Tunings) -> tuple[Fusion, Calibration]:
    """The tuning used for a request in no fitted language: English's when fitted, else the first."""
    return tunings.get("en") or next(iter(tunings.values()))


def write(path: Path, tunings: Tunings) -> None:
    """Write a calibration file in the format kb/content/calibration.json uses: the default
    fusion and calibration at the top, and every language's under `locales`."""
    fusion, calibration = default_tuning(tunings)
    data = {"fusion": fusion.to_dict(), "calibration": calibration.to_dict(),
            "locales": {loc: {"fusion": f.to_dict(), "calibration": c.to_dict()} for loc, (f, c) in tunings.items()}}
    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def test_metrics(prepared: Sequence[Prepared], tunings: Tunings, split: str = "test") -> dict[str, dict]:
    """Brier score and ECE of the confidence on each dataset's held-out split (its language's fit)."""
    from search.learn import brier, ece

    out = {}
    for p in prepared:
        fusion, cal = tunings.get(p.searched) or default_tuning(tunings)
        feats, correct, in_scope = top_hits(p, p.rows(split), fusion)
        conf = np.array([cal.confidence(f) for f in feats])
        y = (correct & in_scope).astype(float)
        out[p.name] = {"brier": brier(conf, y), "ece": ece(conf, y)}
    return out
