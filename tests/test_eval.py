"""Answer quality on a slice of a public dataset: hybrid vs single systems, monotonic calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search.fusion import Calibration

EVAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
DATASET = EVAL_DIR / "banking77_oos"
SLICE = 300  # queries per split: enough to compare systems, small enough for a fast run


@pytest.fixture(scope="module")
def sliced(tmp_path_factory, embedder):
    """banking77_oos with its first SLICE dev and test queries, prepared through kb's indexer."""
    if not DATASET.exists():
        pytest.skip(f"../shared/eval not found at {EVAL_DIR}: answer-quality tests need the public datasets")
    from kb.measure.calibrate import prepare

    src = tmp_path_factory.mktemp("slice") / DATASET.name
    src.mkdir()
    (src / "articles.jsonl").write_text((DATASET / "articles.jsonl").read_text())
    queries = [json.loads(line) for line in (DATASET / "queries.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(0)
    keep = []
    for split in ("dev", "test"):
        rows = [q for q in queries if q["split"] == split]
        keep += [rows[i] for i in sorted(rng.choice(len(rows), SLICE, replace=False))]
    (src / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in keep) + "\n")
    return prepare(src, embedder, tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def results(sliced, embedder):
    from kb.measure.eval import evaluate_prepared

    return evaluate_prepared(sliced, embedder, split="test", shipped=False)


def test_eval_reports_every_system_and_metric(results):
    keys = {"recall@1", "recall@3", "mrr@10", "ndcg@10", "auroc", "oos_rejected", "deflection_correct", "false_answer"}
    assert set(results) == {"bm25", "dense", "dense_max", "hybrid"}
    for name, metrics in results.items():
        assert keys <= set(metrics), name
        assert 0.0 <= metrics["recall@1"] <= metrics["recall@3"] <= 1.0


def test_hybrid_not_worse_than_single_systems(results):
    hybrid = results["hybrid"]
    for single in ("bm25", "dense_max"):
        assert hybrid["recall@1"] >= results[single]["recall@1"] - 0.01, single
        assert hybrid["mrr@10"] >= results[single]["mrr@10"] - 0.01, single
    assert hybrid["auroc"] >= max(results["bm25"]["auroc"], results["dense_max"]["auroc"]) - 0.01


def test_calibration_is_monotonic_in_score(sliced):
    from kb.measure.calibrate import fit

    _, cal = fit([sliced])
    assert cal.threshold > 0 and "dev_brier" in cal.metrics and cal.source.startswith("kb calibrate")
    res = sliced.index.search(sliced.queries[0]["query"], k=1, vector=sliced.vectors[0], calibration=cal)
    base = dict(res.hits[0].features)
    # raising the evidence that the fit weighs positively never lowers the confidence
    for name in ("score", "dense", "centroid", "margin"):
        weight = cal.coef.get(name, 0.0) + cal.scope_coef.get(name, 0.0)
        if cal.coef.get(name, 0.0) < 0 or cal.scope_coef.get(name, 0.0) < 0 or not weight:
            continue
        values = [cal.confidence({**base, name: base[name] + step}) for step in np.linspace(-0.3, 0.3, 13)]
        assert all(b >= a for a, b in zip(values, values[1:])), name


def test_calibration_confidence_is_a_probability():
    cal = Calibration(coef={"score": 5.0}, intercept=-2.0, scope_coef={"dense": 3.0}, scope_intercept=-1.0)
    low, high = cal.confidence({"score": 0.0, "dense": 0.0}), cal.confidence({"score": 2.0, "dense": 1.0})
    assert 0.0 < low < high < 1.0
    assert Calibration.from_dict(cal.to_dict()) == cal
