"""Fitting fusion weights and calibrations from labelled queries (no I/O, no datasets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import minimize

from search.fusion import FEATURES, Calibration, Fusion
from search.scoring import BASE

FALSE_ANSWER_TARGET = 0.10


@dataclass(frozen=True)
class Group:
    """One labelled in-scope query: its candidates' BASE evidence and which rows are right."""

    matrix: np.ndarray
    relevant: np.ndarray  # bool per candidate


def fit_fusion(groups: Sequence[Group], l2: float = 0.0) -> Fusion:
    """Fit fusion weights by maximising the softmax likelihood of the right document.

    Five weights over hundreds of queries need no penalty; l2 is there for tiny sets.
    """
    groups = [g for g in groups if g.relevant.any()]
    if not groups:
        return Fusion()
    sizes = np.array([len(g.matrix) for g in groups])
    X = np.vstack([g.matrix for g in groups]).astype(np.float64)
    rel = np.concatenate([g.relevant for g in groups])
    owner = np.repeat(np.arange(len(groups)), sizes)
    starts = np.r_[0, sizes.cumsum()[:-1]]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = X @ w
        zmax = np.maximum.reduceat(z, starts)
        ez = np.exp(z - zmax[owner])
        denom = np.add.reduceat(ez, starts)
        p = ez / denom[owner]
        pos = np.add.reduceat(np.where(rel, p, 0.0), starts)
        # gradient of -log(sum of p over right rows)
        q = np.where(rel, p, 0.0) / pos[owner]
        grad = -((q - p)[:, None] * X).sum(0) / len(groups) + 2 * l2 * w
        return float(-np.log(pos + 1e-12).mean() + l2 * w @ w), grad

    start = np.zeros(len(BASE))
    start[0] = 10.0
    w = minimize(loss, start, jac=True, method="L-BFGS-B").x
    scale = w[0] if w[0] > 1e-6 else float(np.abs(w).max() or 1.0)
    return Fusion(**{name: round(float(v / scale), 4) for name, v in zip(BASE, w)})


def _logistic(X: np.ndarray, y: np.ndarray, names: Sequence[str], weight: np.ndarray | None = None) -> tuple[dict[str, float], float]:
    """A standardised L2 logistic fit, returned as raw-feature coefficients and an intercept."""
    from sklearn.linear_model import LogisticRegression

    mean, std = X.mean(0), X.std(0)
    keep = std > 1e-9
    Z = (X[:, keep] - mean[keep]) / std[keep]
    model = LogisticRegression(C=1.0, max_iter=2000).fit(Z, y, sample_weight=weight)
    coef = model.coef_[0] / std[keep]
    intercept = float(model.intercept_[0] - (coef * mean[keep]).sum())
    kept = [n for n, k in zip(names, keep) if k]
    return {n: round(float(c), 6) for n, c in zip(kept, coef)}, round(intercept, 6)


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of probabilities against 0/1 outcomes."""
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width confidence bins."""
    if not len(y):
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return float(total / len(y))


def feature_matrix(features: Sequence[dict[str, float]], names: Sequence[str] = FEATURES) -> np.ndarray:
    """Stack hit feature dicts into a matrix with columns in `names` order."""
    return np.array([[f.get(n, 0.0) for n in names] for f in features], dtype=np.float64).reshape(-1, len(names))


def confidences(cal: Calibration, features: Sequence[dict[str, float]]) -> np.ndarray:
    """The calibrated confidence of each top hit."""
    return np.array([cal.confidence(f) for f in features], dtype=np.float64)


def pick_threshold(
    conf: np.ndarray, correct: np.ndarray, in_scope: np.ndarray, target: float, weight: np.ndarray | None = None
) -> float:
    """The lowest threshold whose (weighted) false-answer rate stays within target.

    False answers are out-of-scope requests answered; without any, wrong top hits stand in.
    """
    bad_mask = ~in_scope if (~in_scope).any() else in_scope & ~correct
    bad = conf[bad_mask]
    if not len(bad):
        return 0.5
    w = np.ones(len(bad)) if weight is None else weight[bad_mask]
    order = np.argsort(-bad, kind="stable")
    # answered means conf >= t: the weighted share of bad ones at or above t must stay <= target
    share = np.cumsum(w[order]) / w.sum()
    over = np.flatnonzero(share > target + 1e-12)
    if not len(over):
        return 0.0
    return float(np.nextafter(bad[order][over[0]], 1.0))


def fit_calibration(
    features: Sequence[dict[str, float]],
    correct: np.ndarray,
    in_scope: np.ndarray,
    source: str,
    names: Sequence[str] = FEATURES,
    target: float = FALSE_ANSWER_TARGET,
    groups: np.ndarray | None = None,
) -> Calibration:
    """Fit P(top hit right) as P(in scope) * P(right | in scope) and the no-answer threshold.

    With `groups` (one dataset id per query) every dataset weighs the same in the fits and in the
    false-answer rate, so one large set does not decide the threshold for all.
    """
    X = feature_matrix(features, names)
    correct, in_scope = np.asarray(correct, bool), np.asarray(in_scope, bool)
    weight = None
    labels = None if groups is None else np.asarray(groups)
    if labels is not None:
        _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        weight = len(labels) / (len(counts) * counts[inverse])
    w_in = None if weight is None else weight[in_scope]
    right_coef, right_b = _logistic(X[in_scope], correct[in_scope], names, w_in) if len(set(correct[in_scope])) > 1 else ({}, 0.0)
    scope_coef, scope_b = _logistic(X, in_scope, names, weight) if len(set(in_scope)) > 1 else ({}, 0.0)
    cal = Calibration(coef=right_coef, intercept=right_b, scope_coef=scope_coef, scope_intercept=scope_b,
                      threshold=0.5, source=source)
    conf = confidences(cal, features)
    if weight is not None and labels is not None:  # each dataset's out-of-scope queries weigh the same in total
        oos_w = np.zeros(len(in_scope))
        for g in np.unique(labels):
            m = (labels == g) & ~in_scope
            oos_w[m] = 1.0 / max(m.sum(), 1)
        weight = np.where(in_scope, weight, oos_w)
    threshold = round(pick_threshold(conf, correct, in_scope, target, weight), 6)
    y = (correct & in_scope).astype(float)
    metrics = {
        "dev_queries": int(len(y)),
        "dev_brier": round(brier(conf, y), 4),
        "dev_ece": round(ece(conf, y), 4),
        "dev_false_answer": round(float((conf[~in_scope] >= threshold).mean()) if (~in_scope).any() else 0.0, 4),
        "dev_deflection_correct": round(float(((conf >= threshold) & correct & in_scope).sum() / max(in_scope.sum(), 1)), 4),
    }
    return Calibration(coef=right_coef, intercept=right_b, scope_coef=scope_coef, scope_intercept=scope_b,
                       threshold=threshold, source=source, metrics=metrics)
