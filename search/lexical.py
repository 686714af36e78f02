"""Exact terms: an Okapi BM25 index over stemmed English and Russian terms.

Kept in memory as a sparse matrix: scoring a query is one sparse column slice and a sum.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import sparse

from search.text import terms


class LexicalIndex:
    """BM25 (k1, b) over a list of texts addressed by row number."""

    def __init__(self, matrix: sparse.csc_matrix, vocab: dict[str, int], idf: np.ndarray,
                 tf: sparse.csr_matrix | None = None) -> None:
        self._matrix = matrix  # rows: texts, columns: terms, values: BM25 term weights
        self._vocab = vocab
        self._idf = idf
        self._tf = tf  # raw term counts, kept so the next build can reuse unchanged rows

    @classmethod
    def build(
        cls, texts: Sequence[str], k1: float = 1.2, b: float = 0.75,
        reuse: tuple["LexicalIndex", Sequence[str]] | None = None,
    ) -> "LexicalIndex":
        """Index texts. `reuse` = (previous index, its texts): equal texts keep their term counts
        instead of being tokenised again, which is most of the cost of a re-index."""
        previous = reuse[0] if reuse and reuse[0]._tf is not None else None
        vocab: dict[str, int] = dict(previous._vocab) if previous else {}  # new terms are appended
        old_row = {text: i for i, text in enumerate(reuse[1])} if previous else {}  # type: ignore[index]
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[int] = []
        kept_at: list[int] = []
        kept_from: list[int] = []
        for row, text in enumerate(texts):
            if text in old_row:
                kept_at.append(row)
                kept_from.append(old_row[text])
                continue
            for term, tf in Counter(terms(text)).items():
                rows.append(row)
                cols.append(vocab.setdefault(term, len(vocab)))
                tfs.append(tf)
        r, c, t = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64), np.asarray(tfs, dtype=np.float32)
        if kept_at:
            old = previous._tf[kept_from].tocoo()  # type: ignore[union-attr,index]
            r = np.concatenate([r, np.asarray(kept_at, dtype=np.int64)[old.row]])
            c = np.concatenate([c, old.col.astype(np.int64)])
            t = np.concatenate([t, old.data.astype(np.float32)])
        counts = sparse.csr_matrix((t, (r, c)), shape=(len(texts), len(vocab)), dtype=np.float32)
        counts.sort_indices()
        lengths = np.asarray(counts.sum(axis=1), dtype=np.float32).ravel()
        n = max(len(texts), 1)
        avg = float(lengths.mean()) if len(texts) else 1.0
        coo = counts.tocoo()
        tf = coo.data
        norm = k1 * (1 - b + b * lengths[coo.row] / max(avg, 1e-9))
        weights = tf * (k1 + 1) / (tf + norm) if len(tf) else tf
        matrix = sparse.csc_matrix((weights, (coo.row, coo.col)), shape=counts.shape, dtype=np.float32)
        df = np.diff(matrix.indptr).astype(np.float32)
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        idf[df == 0] = 0.0  # terms only removed texts had: unknown, as in a fresh build
        return cls(matrix, vocab, idf, counts)

    def query_columns(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the matrix columns and idf weights of the query's known terms."""
        counts = Counter(t for t in terms(query) if t in self._vocab)
        cols = np.fromiter((self._vocab[t] for t in counts), dtype=np.int64)
        weights = np.fromiter((self._idf[self._vocab[t]] for t in counts), dtype=np.float32)
        return cols, weights

    def score(self, query: str) -> np.ndarray:
        """Return the BM25 score of every text for the query (zeros where nothing matches)."""
        cols, weights = self.query_columns(query)
        if not len(cols):
            return np.zeros(self._matrix.shape[0], dtype=np.float32)
        sub = self._matrix[:, cols]
        return np.asarray(sub @ weights, dtype=np.float32).ravel()

    def score_matches(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Return BM25 scores and the number of distinct query terms matched, for every text."""
        cols, weights = self.query_columns(query)
        n = self._matrix.shape[0]
        if not len(cols):
            return np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.int32)
        # read the query's columns straight from the CSC arrays (no sliced sparse matrix per query)
        m = self._matrix
        spans = [(m.indptr[c], m.indptr[c + 1]) for c in cols]
        rows = np.concatenate([m.indices[a:b] for a, b in spans])
        values = np.concatenate([m.data[a:b] * w for (a, b), w in zip(spans, weights)])
        scores = np.bincount(rows, weights=values, minlength=n).astype(np.float32)
        matches = np.bincount(rows, minlength=n).astype(np.int32)  # stored weights are all > 0
        return scores, matches

    def max_score(self, query: str) -> float:
        """An upper bound of the score any text could reach: used to scale scores to [0, 1]."""
        _, weights = self.query_columns(query)
        return float(weights.sum()) * 2.2  # (k1 + 1) is the most one term can contribute

    def save(self, path: Path) -> None:
        sparse.save_npz(path / "lexical.npz", self._matrix, compressed=False)
        if self._tf is not None:
            sparse.save_npz(path / "lexical_tf.npz", self._tf, compressed=False)
        np.save(path / "lexical_idf.npy", self._idf)
        (path / "lexical_vocab.json").write_text(json.dumps(self._vocab, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "LexicalIndex":
        matrix = sparse.load_npz(path / "lexical.npz").tocsc()
        idf = np.load(path / "lexical_idf.npy")
        vocab = json.loads((path / "lexical_vocab.json").read_text())
        return cls(matrix, vocab, idf)

    def with_counts(self, path: Path) -> "LexicalIndex":
        """This index plus the raw term counts saved beside it, which a later build can reuse."""
        counts = path / "lexical_tf.npz"
        return LexicalIndex(self._matrix, self._vocab, self._idf, sparse.load_npz(counts).tocsr() if counts.exists() else None)
