"""Per-document evidence for a query: chunk maxima, prototypes, an article classifier and BM25.

A help article is represented three ways at once, because each wins on a different kind of KB:
- its best chunk (max cosine over title, aliases and passage chunks): precise on long articles;
- its prototype (the normalised mean of its chunk vectors): robust when an article is a list of
  example phrasings, as in intent-style FAQs;
- a linear classifier trained at build time to tell the articles' chunks apart (few-shot intent
  classification over the frozen embedding): it learns which directions separate near neighbours.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from search.dense import inner_products

# The columns of a candidate matrix, in order; Fusion holds one weight per name.
BASE = ("dense", "centroid", "lexical", "title", "classifier")
# Training the classifier is skipped above this size: prototypes and chunks still work.
CLASSIFIER_MAX_DOCS = 5000
CLASSIFIER_MAX_CHUNKS = 200_000
CLASSIFIER_C = 10.0
FILE = "prototypes.npz"


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions of the ranges [start, start + length), back to back (one vectorised gather)."""
    offsets = lengths.cumsum() - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())


@dataclass(frozen=True)
class DocModel:
    """Build-time, per-document vectors: prototypes, their spread, and classifier weights."""

    centroids: np.ndarray  # (docs, dim), L2-normalised mean chunk vector
    typical: np.ndarray  # (docs,), mean cosine of the document's chunks to its prototype
    weights: np.ndarray  # (docs, dim); (0, dim) when no classifier was trained
    bias: np.ndarray  # (docs,) or (0,)

    @classmethod
    def build(
        cls, vectors: np.ndarray, chunk_vector: np.ndarray, chunk_doc: np.ndarray, docs: int,
        start: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> "DocModel":
        """Compute prototypes and train the article classifier from chunk vectors.

        `vectors` are the distinct vectors and `chunk_vector` each chunk's row in them.
        `start` (weights, bias per document) warm-starts the classifier from the previous build,
        so re-indexing a few changed articles converges in a few iterations instead of a full fit.
        """
        from scipy import sparse

        dim = vectors.shape[1]
        uses = sparse.csr_matrix((np.ones(len(chunk_doc)), (chunk_doc, chunk_vector)), shape=(docs, len(vectors)))
        sums = np.asarray(uses @ vectors.astype(np.float64))
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.maximum(norms, 1e-9)).astype(np.float32)
        # mean cosine of a document's chunks to its prototype: sum(v_i . s/|s|) / n = |s| / n
        typical = (norms[:, 0] / np.maximum(np.bincount(chunk_doc, minlength=docs), 1)).astype(np.float32)
        weights = np.zeros((0, dim), dtype=np.float32)
        bias = np.zeros(0, dtype=np.float32)
        if 2 <= docs <= CLASSIFIER_MAX_DOCS and len(chunk_vector) <= CLASSIFIER_MAX_CHUNKS:
            weights = np.zeros((docs, dim), dtype=np.float32)
            bias = np.zeros(docs, dtype=np.float32)
            from sklearn.linear_model import LogisticRegression
            from threadpoolctl import threadpool_limits

            model = LogisticRegression(C=CLASSIFIER_C, max_iter=300, warm_start=start is not None and docs > 2)
            if model.warm_start:
                model.coef_, model.intercept_ = start[0].astype(np.float64), start[1].astype(np.float64)  # type: ignore[index]
            # a build may use every core (serving processes limit BLAS to one thread per request)
            with warnings.catch_warnings(), threadpool_limits(os.cpu_count() or 1, user_api="blas"):
                warnings.simplefilter("ignore")  # convergence chatter: the fit is good enough early
                model.fit(vectors[chunk_vector], chunk_doc)
            if docs == 2:  # binary: sklearn keeps one row; spread it symmetrically
                weights[1], bias[1] = model.coef_[0] / 2, model.intercept_[0] / 2
                weights[0], bias[0] = -weights[1], -bias[1]
            else:
                weights[model.classes_] = model.coef_
                bias[model.classes_] = model.intercept_
        return cls(centroids, typical, weights, bias)

    @property
    def trained(self) -> bool:
        """Whether a classifier was trained (above CLASSIFIER_MAX_DOCS there are no weights)."""
        return len(self.weights) > 0

    def classifier_logprob(self, qv: np.ndarray) -> np.ndarray:
        """Log-probability of each document under the article classifier."""
        z = self.weights @ qv + self.bias
        z = z - z.max()
        return z - np.log(np.exp(z).sum())

    def save(self, path: Path) -> None:
        np.savez(path / FILE, centroids=self.centroids, typical=self.typical, weights=self.weights, bias=self.bias)

    @staticmethod
    def load_classifier(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """Only the classifier's weights and biases (not the prototypes), or None if none was trained."""
        with np.load(path / FILE) as data:  # an npz member is read only when asked for
            weights, bias = data["weights"], data["bias"]
        return (weights, bias) if len(weights) else None

    @classmethod
    def load(cls, path: Path) -> "DocModel":
        with np.load(path / FILE) as data:
            return cls(data["centroids"], data["typical"], data["weights"], data["bias"])


@dataclass(frozen=True)
class Candidates:
    """The candidate documents of one query with their evidence, one row per document.

    Only the ranking matrix is computed for every candidate. Where the answer sits inside a
    document (its best passage and chunk) is worked out by `locate`, for the few that are shown.
    """

    rows: np.ndarray  # document rows
    matrix: np.ndarray  # (len(rows), len(BASE)) in BASE order
    typical: np.ndarray  # the document's typical chunk-to-prototype cosine
    query_terms: int
    sims: np.ndarray  # query cosine of every candidate chunk, candidates' chunks back to back
    offsets: np.ndarray  # where each candidate's chunks start in sims
    lex: np.ndarray  # BM25 of every passage (scaled by the query's best possible score)
    lex_matches: np.ndarray  # query terms found in every passage
    blend: tuple[float, float]  # weights of a passage's best chunk and its BM25 when locating

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, keep: np.ndarray) -> "Candidates":
        """The same evidence for some of the candidates (in their order)."""
        return replace(self, rows=self.rows[keep], matrix=self.matrix[keep], typical=self.typical[keep],
                       offsets=self.offsets[keep])

    def locate(self, i: int, ix: "object") -> tuple[int, int, float]:
        """Candidate i's best passage row, best chunk row and the query-term coverage of the passage.

        A passage is chosen by the blend of its best chunk and its own BM25, as documents are
        ranked; the chunk is the best one inside it.
        """
        row = int(self.rows[i])
        first, end = int(ix.doc_chunk_start[row]), int(ix.doc_chunk_start[row + 1])  # type: ignore[attr-defined]
        sims = self.sims[self.offsets[i] : self.offsets[i] + end - first]
        passages = ix.chunk_passage[first:end]  # type: ignore[attr-defined]
        p_first, p_end = int(ix.doc_passage_start[row]), int(ix.doc_passage_start[row + 1])  # type: ignore[attr-defined]
        best = np.full(p_end - p_first, -np.inf, dtype=np.float32)
        np.maximum.at(best, passages - p_first, sims)
        passage = p_first + int(np.argmax(self.blend[0] * best + self.blend[1] * self.lex[p_first:p_end]))
        chunk = first + int(np.argmax(np.where(passages == passage, sims, -np.inf)))
        return passage, chunk, float(self.lex_matches[passage]) / max(self.query_terms, 1)


def score_candidates(
    ix: "object",
    qv: np.ndarray,
    rows: np.ndarray,
    lex: np.ndarray,
    lex_matches: np.ndarray,
    lex_scale: float,
    query_terms: int,
    weights: np.ndarray,
    vector_sims: np.ndarray | None = None,
) -> Candidates:
    """Compute BASE evidence for candidate documents (vectorised over their chunks).

    Candidate rows are sorted and a document's chunks are contiguous, so every per-document
    maximum is a segmented `reduceat`; when every document is a candidate the chunk matrix is
    used in place (no gathered copy).
    """
    vectors, chunk_vector = ix.vectors, ix.chunk_vector  # type: ignore[attr-defined]
    starts, ends = ix.doc_chunk_start[rows], ix.doc_chunk_start[rows + 1]  # type: ignore[attr-defined]
    lengths = ends - starts
    offsets = lengths.cumsum() - lengths
    every = len(rows) == len(ix.doc_chunk_start) - 1  # type: ignore[attr-defined]
    used = chunk_vector if every else chunk_vector[spans(starts, lengths)]
    if vector_sims is not None:  # the caller already scored every distinct vector
        sims = vector_sims[used]
    elif len(vectors) <= 2 * len(used):  # cheaper to score every distinct vector in place than to gather
        sims = inner_products(vectors, qv)[used]
    else:
        sims = np.asarray(vectors[used] @ qv, dtype=np.float32)
    dense = np.maximum.reduceat(sims, offsets)  # every document has its title chunk
    title = sims[offsets]
    model: DocModel = ix.docmodel  # type: ignore[attr-defined]
    centroid = model.centroids[rows] @ qv
    classifier = model.classifier_logprob(qv)[rows] if model.trained else np.zeros(len(rows))
    p_start, p_end = ix.doc_passage_start[rows], ix.doc_passage_start[rows + 1]  # type: ignore[attr-defined]
    p_len = p_end - p_start
    scaled = lex / lex_scale
    lexical = np.maximum.reduceat(scaled[spans(p_start, p_len)], p_len.cumsum() - p_len)
    matrix = np.stack([dense, centroid, lexical, title, classifier], axis=1).astype(np.float32)
    return Candidates(rows, matrix, model.typical[rows], query_terms, sims, offsets, scaled, lex_matches,
                      (float(weights[0]), float(weights[2])))
