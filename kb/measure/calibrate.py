"""Fitting kb's fusion weights and answer confidence on the dev split of public datasets."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from search.embed import Embedder
from search.fusion import Calibration, Fusion
from search.index import Index
from search.store import IndexStore
from search.learn import Group, fit_calibration, fit_fusion

from kb.content.articles import Article, split_sections
from kb.content.indexer import index_articles
from kb.errors import KbError


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

    def rows(self, split: str) -> list[int]:
        return [i for i, q in enumerate(self.queries) if q["split"] == split]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def to_articles(records: Sequence[dict]) -> list[Article]:
    """Dataset articles as kb articles: slug = id, locale en, body parsed as Markdown."""
    return [
        Article(slug=r["id"], title=r["title"], category="eval", locale="en", status="published",
                updated="", body=r["body"], sections=tuple(split_sections(r["body"], r["title"])))
        for r in records
    ]


def prepare(directory: Path, embedder: Embedder, workdir: Path, batch: int = 256) -> Prepared:
    """Index a dataset's articles with `kb index`'s code path and encode all its queries."""
    directory = Path(directory)
    if not (directory / "articles.jsonl").exists() or not (directory / "queries.jsonl").exists():
        raise DatasetError(f"{directory}: needs articles.jsonl and queries.jsonl")
    records = read_jsonl(directory / "articles.jsonl")
    root = workdir / directory.name
    index_articles(to_articles(records), root, embedder)
    queries = read_jsonl(directory / "queries.jsonl")
    texts = [q["query"] for q in queries]
    parts = [embedder.encode_queries(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    vectors = np.vstack(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)
    return Prepared(directory.name, IndexStore(root).load(embedder), queries, vectors, records)


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
    directories: Sequence[Path], embedder: Embedder, fit_weights: bool = True
) -> tuple[Fusion, Calibration, list[Prepared], tempfile.TemporaryDirectory]:
    """Prepare each dataset and fit pooled fusion and calibration on their dev splits."""
    work = tempfile.TemporaryDirectory(prefix="kb-calibrate-")
    prepared = [prepare(Path(d), embedder, Path(work.name)) for d in directories]
    fusion, cal = fit(prepared, fit_weights=fit_weights)
    return fusion, cal, prepared, work


def write(path: Path, fusion: Fusion, calibration: Calibration) -> None:
    """Write a calibration file in the format kb/content/calibration.json uses."""
    data = {"fusion": fusion.to_dict(), "calibration": calibration.to_dict()}
    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def test_metrics(prepared: Sequence[Prepared], fusion: Fusion, cal: Calibration, split: str = "test") -> dict[str, dict]:
    """Brier score and ECE of the confidence on each dataset's held-out split."""
    from search.learn import brier, ece

    out = {}
    for p in prepared:
        feats, correct, in_scope = top_hits(p, p.rows(split), fusion)
        conf = np.array([cal.confidence(f) for f in feats])
        y = (correct & in_scope).astype(float)
        out[p.name] = {"brier": brier(conf, y), "ece": ece(conf, y)}
    return out
