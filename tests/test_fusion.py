"""Fusion weights, the fitting code and the shipped calibration, without the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from search.fusion import FEATURES, Calibration, Fusion
from search.learn import Group, ece, fit_calibration, fit_fusion, pick_threshold
from search.scoring import BASE, DocModel

SHIPPED = Path(__file__).resolve().parents[1] / "kb" / "content" / "calibration.json"


def test_fusion_round_trips_and_ignores_unknown_keys():
    f = Fusion(dense=1.0, centroid=0.5, lexical=0.2, title=0.1, classifier=0.05)
    assert Fusion.from_dict({**f.to_dict(), "dense_top_n": 3}) == f
    assert len(f.vector()) == len(BASE)


def test_fit_fusion_learns_the_informative_feature():
    rng = np.random.default_rng(0)
    groups = []
    for _ in range(200):
        m = rng.normal(size=(20, len(BASE))).astype(np.float32)
        right = int(np.argmax(m[:, 2]))  # only "lexical" tells the right document
        groups.append(Group(m, np.arange(20) == right))
    f = fit_fusion(groups)
    assert abs(f.lexical) > 3 * max(abs(f.centroid), abs(f.title), abs(f.classifier))


def test_threshold_keeps_false_answers_within_target():
    rng = np.random.default_rng(1)
    conf = np.r_[rng.uniform(0.3, 1.0, 500), rng.uniform(0.0, 0.7, 200)]
    in_scope = np.r_[np.ones(500, bool), np.zeros(200, bool)]
    t = pick_threshold(conf, np.ones(700, bool), in_scope, 0.10)
    assert (conf[~in_scope] >= t).mean() <= 0.10
    assert (conf[~in_scope] >= t - 0.02).mean() > 0.08  # and is not needlessly strict


def test_fit_calibration_is_calibrated_on_its_own_data():
    rng = np.random.default_rng(2)
    score = rng.uniform(0, 1, 2000)
    correct = rng.uniform(0, 1, 2000) < score
    feats = [{"score": s} for s in score]
    cal = fit_calibration(feats, correct, np.ones(2000, bool), source="test", names=("score",))
    conf = np.array([cal.confidence(f) for f in feats])
    assert ece(conf, correct.astype(float)) < 0.05
    assert cal.coef["score"] > 0


def test_doc_model_prototypes_and_classifier():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 16))
    vectors = np.vstack([c + 0.1 * rng.normal(size=(5, 16)) for c in centres]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # chunk 15 is a copy of chunk 0 in document 2 (a shared section): one stored vector, used twice
    chunk_vector = np.r_[np.arange(15), 0]
    chunk_doc = np.r_[np.repeat(np.arange(3), 5), 2]
    model = DocModel.build(vectors, chunk_vector, chunk_doc, 3)
    full = vectors[chunk_vector]
    for d in range(3):
        mine = full[chunk_doc == d]
        centre = mine.sum(0) / np.linalg.norm(mine.sum(0))
        assert np.allclose(model.centroids[d], centre, atol=1e-6)
        assert np.isclose(model.typical[d], (mine @ centre).mean(), atol=1e-6)
    q = centres[1] / np.linalg.norm(centres[1])
    assert int(np.argmax(model.centroids @ q)) == 1
    assert int(np.argmax(model.classifier_logprob(q))) == 1
    assert np.isclose(np.exp(model.classifier_logprob(q)).sum(), 1.0)


def test_shipped_calibration_was_fitted_from_data():
    data = json.loads(SHIPPED.read_text())
    cal = Calibration.from_dict(data["calibration"])
    assert cal.source.startswith("kb calibrate") and "dev split" in cal.source
    assert set(cal.coef) <= set(FEATURES) and set(cal.scope_coef) <= set(FEATURES)
    assert 0.0 < cal.threshold < 1.0 and "dev_brier" in cal.metrics
    Fusion.from_dict(data["fusion"])
