"""Fusing dense and lexical evidence into one ranking, and mapping it to a calibrated confidence."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

# The features a calibration may use; each is computed for every ranked hit.
FEATURES = ("dense", "lexical", "score", "margin", "dense_margin", "coverage", "query_terms")


@dataclass(frozen=True)
class Fusion:
    """Weights of the fused ranking score: a linear blend of dense and scaled BM25."""

    dense: float = 1.0
    lexical: float = 0.3
    # Dense evidence per document: max over chunks, plus a share of the mean of the top few.
    dense_top_mean: float = 0.0
    dense_top_n: int = 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Fusion":
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Calibration:
    """Logistic map from a hit's features to P(top hit is right), plus the no-answer threshold.

    The numbers are data: `kb calibrate` fits them and stores them in the index manifest.
    """

    coef: dict[str, float] = field(default_factory=lambda: {"score": 12.0, "margin": 6.0})
    intercept: float = -8.0
    threshold: float = 0.5
    source: str = "unfitted default"
    metrics: dict[str, float] = field(default_factory=dict)

    def confidence(self, features: dict[str, float]) -> float:
        """Return the calibrated probability for one hit's features."""
        z = self.intercept + sum(w * features.get(name, 0.0) for name, w in self.coef.items())
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        ez = math.exp(z)
        return ez / (1.0 + ez)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Calibration":
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
