"""`kb eval`: retrieval and no-answer quality of kb against three baselines on a public dataset."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from search.embed import Embedder
from search.fusion import Calibration, Fusion
from search.glossary import Glossary
from search.learn import brier, ece, fit_calibration

from kb.measure.calibrate import Prepared, fit, prepare

SYSTEMS = ("bm25", "dense", "dense_max", "hybrid")
ACCEPT_IN_SCOPE = 0.90  # oos_rejected is read at the threshold accepting this share of dev in-scope
BASELINE_FUSIONS = {
    "bm25": Fusion(dense=0.0, centroid=0.0, lexical=1.0, title=0.0, classifier=0.0),
    "dense_max": Fusion(dense=1.0, centroid=0.0, lexical=0.0, title=0.0, classifier=0.0),
}


@dataclass
class Run:
    """One system's answers to every query: ranked ids, top-hit features and confidences."""

    ranked: list[list[str]]
    features: list[dict]
    confidence: np.ndarray  # answerability score behind auroc and oos_rejected
    calibration: Calibration  # its confidence and threshold decide "answered"


def run_index(p: Prepared, fusion: Fusion, calibration: Calibration | None = None, k: int = 10) -> tuple[list[list[str]], list[dict]]:
    """Search every query through Index.search with the given weights."""
    ranked, feats = [], []
    for i, q in enumerate(p.queries):
        res = p.index.search(q["query"], k=k, vector=p.vectors[i], fusion=fusion, calibration=calibration)
        ranked.append([h.doc_id for h in res.hits])
        feats.append(res.hits[0].features if res.hits else {})
    return ranked, feats


def run_whole_article(p: Prepared, embedder: Embedder, k: int = 10) -> tuple[list[list[str]], list[dict]]:
    """The `dense` baseline: one vector per article (title and body), cosine to the query."""
    texts = [f"{a['title']}\n\n{a['body']}" for a in p.articles]
    vectors = embedder.encode_documents(texts)
    ids = [a["id"] for a in p.articles]
    sims = p.vectors @ vectors.T
    ranked, feats = [], []
    for row in sims:
        order = np.argsort(-row)[:k]
        ranked.append([ids[j] for j in order])
        second = float(row[order[1]]) if len(order) > 1 else 0.0
        feats.append({"score": float(row[order[0]]), "margin": float(row[order[0]]) - second})
    return ranked, feats


def _labels(p: Prepared, ranked: list[list[str]], rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    correct = np.array([bool(ranked[i]) and ranked[i][0] in p.queries[i]["relevant"] for i in rows], bool)
    in_scope = np.array([bool(p.queries[i]["relevant"]) for i in rows], bool)
    return correct, in_scope


def baseline_run(p: Prepared, ranked: list[list[str]], feats: list[dict], name: str) -> Run:
    """A baseline's confidence is its raw top score; its no-answer threshold is fitted on dev."""
    dev = p.rows("dev")
    correct, in_scope = _labels(p, ranked, dev)
    cal = fit_calibration([feats[i] for i in dev], correct, in_scope, source=f"{name}: score only, dev", names=("score",))
    return Run(ranked, feats, np.array([f.get("score", -math.inf) for f in feats]), cal)


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve: P(a positive outranks a negative), ties counted half."""
    if not len(pos) or not len(neg):
        return float("nan")
    scores = np.concatenate([pos, neg])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def score_run(p: Prepared, run: Run, split: str) -> dict:
    """All metrics of one system on one split."""
    rows = p.rows(split)
    queries = [p.queries[i] for i in rows]
    ins = [i for i, q in zip(rows, queries) if q["relevant"]]
    oos = [i for i, q in zip(rows, queries) if not q["relevant"]]
    r1 = r3 = mrr = ndcg = 0.0
    for i in ins:
        rel = set(p.queries[i]["relevant"])
        ranks = [n for n, d in enumerate(run.ranked[i][:10]) if d in rel]
        r1 += bool(ranks and ranks[0] == 0)
        r3 += bool(ranks and ranks[0] < 3)
        mrr += 1.0 / (ranks[0] + 1) if ranks else 0.0
        ideal = sum(1.0 / math.log2(n + 2) for n in range(min(len(rel), 10)))
        ndcg += sum(1.0 / math.log2(n + 2) for n in ranks) / ideal
    n_in = max(len(ins), 1)
    conf = run.confidence
    dev_in = [i for i in p.rows("dev") if p.queries[i]["relevant"]]
    accept = float(np.quantile(conf[dev_in], 1 - ACCEPT_IN_SCOPE)) if dev_in else -math.inf
    cal_conf = np.array([run.calibration.confidence(f) for f in run.features])
    answered = cal_conf >= run.calibration.threshold
    correct, _ = _labels(p, run.ranked, rows)
    right = dict(zip(rows, correct))
    n_answered = int(answered[rows].sum())
    out = {
        "recall@1": r1 / n_in, "recall@3": r3 / n_in, "mrr@10": mrr / n_in, "ndcg@10": ndcg / n_in,
        "auroc": auroc(conf[ins], conf[oos]),
        "oos_rejected": float((conf[oos] < accept).mean()) if oos else float("nan"),
        "deflection_correct": sum(1 for i in ins if answered[i] and right[i]) / n_in,
        "false_answer": float(answered[oos].mean()) if oos else float("nan"),
        "answered_precision": sum(1 for i in rows if answered[i] and i in set(ins)) / max(n_answered, 1),
        "answered_recall": float(answered[ins].mean()) if ins else float("nan"),
        "brier": brier(cal_conf[rows], np.array([float(right[i]) for i in rows])),
        "ece": ece(cal_conf[rows], np.array([float(right[i]) for i in rows])),
    }
    tags = sorted({p.queries[i].get("tag", "") for i in oos})
    if len(tags) > 1:
        for tag in tags:
            neg = [i for i in oos if p.queries[i].get("tag", "") == tag]
            out[f"auroc_{tag}"] = auroc(conf[ins], conf[neg])
    return {k: round(v, 4) if isinstance(v, float) and not math.isnan(v) else v for k, v in out.items()}


def evaluate(directory: Path, embedder: Embedder, split: str = "test", shipped: bool = True,
             locale: str | None = None, glossary: Glossary | None = None) -> dict[str, dict]:
    """Index a dataset as `kb index` does, fit kb's weights and calibration on dev, score `split`.

    The dataset's languages are detected from its text unless `locale` is given. Requests in
    another language than the articles are searched as their gloss when a glossary is given.
    """
    with tempfile.TemporaryDirectory(prefix="kb-eval-") as work:
        p = prepare(Path(directory), embedder, Path(work), locale=locale, glossary=glossary)
        return evaluate_prepared(p, embedder, split=split, shipped=shipped)


def evaluate_prepared(p: Prepared, embedder: Embedder, split: str = "test", shipped: bool = True) -> dict[str, dict]:
    """Score the four systems (and kb with its shipped weights) on one prepared dataset."""
    runs: dict[str, Run] = {}
    for name, fusion in BASELINE_FUSIONS.items():
        runs[name] = baseline_run(p, *run_index(p, fusion), name=name)
    runs["dense"] = baseline_run(p, *run_whole_article(p, embedder), name="dense")
    fusion, cal = fit([p])  # dev only: the same fit as `kb calibrate --dataset`
    ranked, feats = run_index(p, fusion, cal)
    # kb's answerability score is the calibration's P(in scope) stage
    runs["hybrid"] = Run(ranked, feats, np.array([cal.answerable(f) for f in feats]), cal)
    if shipped:  # the weights and calibration shipped in kb/content/calibration.json for the requests (or the crossing)
        fusion0, cal0 = p.index.tuning(p.searched)
        ranked, feats = run_index(p, fusion0, cal0)
        runs["hybrid_shipped"] = Run(ranked, feats, np.array([cal0.answerable(f) for f in feats]), cal0)
    results = {name: score_run(p, runs[name], split) for name in (*SYSTEMS, *(["hybrid_shipped"] if shipped else []))}
    ins = [i for i in p.rows(split) if p.queries[i]["relevant"]]
    oos = [i for i in p.rows(split) if not p.queries[i]["relevant"]]
    full = np.array([cal.confidence(f) for f in runs["hybrid"].features])
    results["hybrid"]["auroc_confidence"] = round(auroc(full[ins], full[oos]), 4)  # P(top 1 right) itself
    results["hybrid"]["fusion"] = fusion.to_dict()
    results["hybrid"]["threshold"] = cal.threshold
    for r in results.values():  # every figure is per language: the requests' and the articles'
        r["locale"], r["article_locale"] = p.locale, p.article_locale
    return results


COLUMNS = ("recall@1", "recall@3", "mrr@10", "ndcg@10", "auroc", "oos_rejected", "deflection_correct", "false_answer", "brier", "ece")


def table(dataset: str, results: dict[str, dict]) -> str:
    """A Markdown table of one dataset's results."""
    extra = sorted({k for r in results.values() for k in r if k.startswith("auroc_")})
    cols = (*COLUMNS, *extra)
    lines = ["| set | locale | system | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for name, r in results.items():
        cells = [f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        locale = r.get("locale", "")
        if r.get("article_locale", locale) != locale:
            locale = f"{locale} → {r['article_locale']}"  # requests in one language, articles in another
        lines.append(f"| {dataset} | {locale} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
