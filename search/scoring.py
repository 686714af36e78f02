"""Per-document evidence for a query: chunk maxima, prototypes, an article classifier and BM25.

A help article is represented three ways at once, because each wins on a different kind of KB:
- its best chunk (max cosine over title, aliases and passage chunks): precise on long articles;
- its prototype (the normalised mean of its chunk vectors): robust when an article is a list of
  example phrasings, as in intent-style FAQs;
- a linear classifier trained at build time to tell the articles' chunks apart (few-shot intent
  classification over the frozen embedding): it learns which directions separate near neighbours.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The columns of a candidate matrix, in order; Fusion holds one weight per name.
BASE = ("dense", "centroid", "lexical", "title", "classifier")
# Training the classifier is skipped above this size: prototypes and chunks still work.
CLASSIFIER_MAX_DOCS = 5000
CLASSIFIER_MAX_CHUNKS = 200_000
CLASSIFIER_C = 10.0
FILE = "prototypes.npz"


@dataclass(frozen=True)
class DocModel:
    """Build-time, per-document vectors: prototypes, their spread, and classifier weights."""

    centroids: np.ndarray  # (docs, dim), L2-normalised mean chunk vector
    typical: np.ndarray  # (docs,), mean cosine of the document's chunks to its prototype
    weights: np.ndarray  # (docs, dim), zeros when no classifier was trained
    bias: np.ndarray  # (docs,)

    @classmethod
    def build(cls, vectors: np.ndarray, chunk_doc: np.ndarray, docs: int) -> "DocModel":
        """Compute prototypes and train the article classifier from chunk vectors."""
        dim = vectors.shape[1]
        sums = np.zeros((docs, dim), dtype=np.float64)
        np.add.at(sums, chunk_doc, vectors)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.maximum(norms, 1e-9)).astype(np.float32)
        typical = np.zeros(docs, dtype=np.float32)
        if len(vectors):
            np.add.at(typical, chunk_doc, np.einsum("ij,ij->i", vectors, centroids[chunk_doc]))
            typical /= np.maximum(np.bincount(chunk_doc, minlength=docs), 1)
        weights = np.zeros((docs, dim), dtype=np.float32)
        bias = np.zeros(docs, dtype=np.float32)
        if 2 <= docs <= CLASSIFIER_MAX_DOCS and len(vectors) <= CLASSIFIER_MAX_CHUNKS:
            from sklearn.linear_model import LogisticRegression

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter: the fit is good enough early
                model = LogisticRegression(C=CLASSIFIER_C, max_iter=300).fit(vectors, chunk_doc)
            if docs == 2:  # binary: sklearn keeps one row; spread it symmetrically
                weights[1], bias[1] = model.coef_[0] / 2, model.intercept_[0] / 2
                weights[0], bias[0] = -weights[1], -bias[1]
            else:
                weights[model.classes_] = model.coef_
                bias[model.classes_] = model.intercept_
        return cls(centroids, typical, weights, bias)

    def classifier_logprob(self, qv: np.ndarray) -> np.ndarray:
        """Log-probability of each document under the article classifier."""
        z = self.weights @ qv + self.bias
        z = z - z.max()
        return z - np.log(np.exp(z).sum())

    def save(self, path: Path) -> None:
        np.savez(path / FILE, centroids=self.centroids, typical=self.typical, weights=self.weights, bias=self.bias)

    @classmethod
    def load(cls, path: Path) -> "DocModel":
        with np.load(path / FILE) as data:
            return cls(data["centroids"], data["typical"], data["weights"], data["bias"])


@dataclass(frozen=True)
class Candidates:
    """The candidate documents of one query with their evidence, one row per document."""

    rows: np.ndarray  # document rows
    matrix: np.ndarray  # (len(rows), len(BASE)) in BASE order
    passage: np.ndarray  # best passage row per document
    chunk: np.ndarray  # best chunk row (within the best passage) per document
    coverage: np.ndarray  # share of the query's terms found in the best passage
    typical: np.ndarray  # the document's typical chunk-to-prototype cosine
    query_terms: int

    def __len__(self) -> int:
        return len(self.rows)


def score_candidates(
    ix: "object",
    qv: np.ndarray,
    rows: np.ndarray,
    lex: np.ndarray,
    lex_matches: np.ndarray,
    lex_scale: float,
    query_terms: int,
    weights: np.ndarray,
) -> Candidates:
    """Compute BASE evidence for candidate documents (vectorised over their chunks)."""
    starts, ends = ix.doc_chunk_start[rows], ix.doc_chunk_start[rows + 1]  # type: ignore[attr-defined]
    lengths = ends - starts
    chunk_rows = np.repeat(ends - lengths.cumsum(), lengths) + np.arange(lengths.sum())
    owner = np.repeat(np.arange(len(rows)), lengths)
    sims = np.asarray(ix.vectors[chunk_rows]) @ qv  # type: ignore[attr-defined]
    dense = np.full(len(rows), -1.0, dtype=np.float32)
    np.maximum.at(dense, owner, sims)
    title = np.where(lengths > 0, np.asarray(ix.vectors[np.minimum(starts, len(ix.vectors) - 1)]) @ qv, -1.0)  # type: ignore[attr-defined]
    model: DocModel = ix.docmodel  # type: ignore[attr-defined]
    centroid = model.centroids[rows] @ qv
    classifier = model.classifier_logprob(qv)[rows] if model.weights.any() else np.zeros(len(rows))
    p_start, p_end = ix.doc_passage_start[rows], ix.doc_passage_start[rows + 1]  # type: ignore[attr-defined]
    lexical = np.array([lex[a:b].max() if b > a else 0.0 for a, b in zip(p_start, p_end)]) / lex_scale
    matrix = np.stack([dense, centroid, lexical, title, classifier], axis=1).astype(np.float32)
    # the best passage blends its best chunk with its own BM25, as the document score does
    passages = ix.chunk_passage[chunk_rows]  # type: ignore[attr-defined]
    per_passage = np.full(len(lex), -np.inf, dtype=np.float32)
    np.maximum.at(per_passage, passages, sims)
    blend = weights[0] * per_passage + weights[2] * lex / lex_scale
    best_passage = np.array([a + int(np.argmax(blend[a:b])) if b > a else a for a, b in zip(p_start, p_end)])
    masked = np.where(passages == best_passage[owner], sims, -np.inf)
    order = np.lexsort((-masked, owner))
    owners, first = np.unique(owner[order], return_index=True)
    best_chunk = starts.copy()
    best_chunk[owners] = chunk_rows[order[first]]
    coverage = lex_matches[best_passage] / max(query_terms, 1)
    return Candidates(rows, matrix, best_passage, best_chunk, coverage, model.typical[rows], query_terms)
