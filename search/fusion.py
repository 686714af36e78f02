"""Fusing dense and lexical evidence into one ranking, and mapping it to a calibrated confidence."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# The features a calibration may use; each is computed for every ranked hit.
FEATURES = (
    "dense", "lexical", "centroid", "title", "classifier", "score", "margin", "dense_margin",
    "centroid_margin", "typical", "coverage", "query_terms",
)


@dataclass(frozen=True)
class Fusion:
    """Weights of the fused ranking score: a linear blend of the per-document evidence.

    dense: best chunk cosine; centroid: cosine to the article prototype; lexical: BM25 scaled to
    [0, 1]; title: cosine to the title; classifier: log-probability under the article classifier.
    The defaults are kb/content/calibration.json's weights (rounded), fitted by `kb calibrate` on the pooled
    dev splits of ../shared/eval.
    """

    dense: float = 1.0
    centroid: float = -0.58
    lexical: float = 0.70
    title: float = 0.16
    classifier: float = 0.41

    def vector(self) -> np.ndarray:
        """The weights in search.scoring.BASE order."""
        return np.array([self.dense, self.centroid, self.lexical, self.title, self.classifier], dtype=np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Fusion":
        if not data:
            return cls()
        known = {k: float(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    ez = math.exp(z)
    return ez / (1.0 + ez)


@dataclass(frozen=True)
class Calibration:
    """Logistic map from a hit's features to P(top hit is right), plus the no-answer threshold.

    Two stages multiply: P(the request is in scope) * P(top hit is right | in scope). A stage with
    no coefficients is 1. The numbers are data: `kb calibrate` fits them and stores them in the
    index manifest.
    """

    coef: dict[str, float] = field(default_factory=lambda: {"score": 12.0, "margin": 6.0})
    intercept: float = -8.0
    threshold: float = 0.5
    source: str = "unfitted default"
    metrics: dict[str, float] = field(default_factory=dict)
    scope_coef: dict[str, float] = field(default_factory=dict)
    scope_intercept: float = 0.0

    def confidence(self, features: dict[str, float]) -> float:
        """Return the calibrated probability for one hit's features."""
        z = self.intercept + sum(w * features.get(name, 0.0) for name, w in self.coef.items())
        p = _sigmoid(z)
        if self.scope_coef:
            zs = self.scope_intercept + sum(w * features.get(n, 0.0) for n, w in self.scope_coef.items())
            p *= _sigmoid(zs)
        return p

    def answerable(self, features: dict[str, float]) -> float:
        """P(some article answers the request): the scope stage, or the confidence without one."""
        if not self.scope_coef:
            return self.confidence(features)
        return _sigmoid(self.scope_intercept + sum(w * features.get(n, 0.0) for n, w in self.scope_coef.items()))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Calibration":
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
