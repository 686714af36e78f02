"""Exact terms: an Okapi BM25 index over the terms of search/analysis.py (English stems, Russian lemmas).

Kept in memory as a sparse matrix: scoring a query is one sparse column slice and a sum. A
request's word the vocabulary lacks is looked up as its alternatives (Russian typed in Latin
letters, a product name written in Cyrillic) and then as a typo of a known term.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import sparse

from search.analysis import CYRILLIC, SOUND_PREFIX, query_terms, term, terms
from search.translit import sound_key

# A word of at least this many letters that the vocabulary lacks is matched to a known term at
# edit distance 1 (2 from TYPO_LONG letters on); shorter ones are too often a half-typed word.
TYPO_MIN = 5
TYPO_LONG = 8
EXPANSIONS = 3  # at most this many vocabulary terms stand in for one alternative


def _widen(matrix: sparse.csr_matrix, columns: int) -> sparse.csr_matrix:
    """The same rows with room for terms added since (new columns are empty)."""
    return sparse.csr_matrix((matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], columns))


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
        cls, texts: Sequence[str | None], k1: float = 1.2, b: float = 0.75,
        reuse: tuple["LexicalIndex", np.ndarray] | None = None,
    ) -> "LexicalIndex":
        """Index texts.

        `reuse` = (a previous index with its term counts, a source row per text): text i takes the
        counts of the previous index's row source[i] where that is >= 0 (texts[i] may then be
        None) instead of being tokenised again, which is most of the cost of a re-index.
        """
        previous, source = reuse if reuse else (None, np.full(len(texts), -1, dtype=np.int64))
        if previous is not None and previous._tf is None:
            raise ValueError("the previous lexical index was loaded without its term counts")
        vocab: dict[str, int] = dict(previous._vocab) if previous else {}  # new terms are appended
        tokenised = np.flatnonzero(source < 0)
        indptr, cols, tfs = [0], [], []
        for row in tokenised.tolist():
            for term, tf in Counter(terms(texts[row])).items():  # type: ignore[arg-type]
                cols.append(vocab.setdefault(term, len(vocab)))
                tfs.append(tf)
            indptr.append(len(cols))
        new = sparse.csr_matrix((np.asarray(tfs, dtype=np.float32), np.asarray(cols, dtype=np.int64), indptr),
                                shape=(len(tokenised), len(vocab)))
        # every output row is one row of [previous counts; new counts]: a single CSR row gather
        pick = source.copy()
        pick[tokenised] = (0 if previous is None or previous._tf is None else previous._tf.shape[0]) + np.arange(len(tokenised))
        stacked = new if previous is None else sparse.vstack(
            [_widen(previous._tf, len(vocab)), new], format="csr")
        counts = stacked[pick] if len(pick) else new
        counts.sort_indices()
        n = max(len(texts), 1)
        lengths = np.asarray(counts.sum(axis=1), dtype=np.float32).ravel()
        avg = float(lengths.mean()) if len(texts) else 1.0
        tf = counts.data
        norm = k1 * (1 - b + b * np.repeat(lengths, np.diff(counts.indptr)) / max(avg, 1e-9))
        weights = tf * (k1 + 1) / (tf + norm) if len(tf) else tf
        matrix = sparse.csr_matrix((weights.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape).tocsc()
        df = np.diff(matrix.indptr).astype(np.float32)
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        idf[df == 0] = 0.0  # terms only removed texts had: unknown, as in a fresh build
        return cls(matrix, vocab, idf, counts)

    def query_columns(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the matrix columns and idf weights of the query's terms the index knows.

        A word's own term wins when the index has it. Otherwise its Russian reading (typed in Latin
        letters) does, then the nearest known term by spelling, then Latin terms that sound like it;
        a word read as several terms shares its weight among them.
        """
        found: dict[int, float] = {}
        for group in query_terms(query):
            columns = self._resolve(group)
            for col in columns:
                weight = float(self._idf[col]) / len(columns)
                found[col] = max(found.get(col, 0.0), weight)
        cols = np.fromiter(found, dtype=np.int64, count=len(found))
        weights = np.fromiter(found.values(), dtype=np.float32, count=len(found))
        return cols, weights

    def knows(self, term: str) -> bool:
        """Whether some indexed text has the term."""
        return term in self._vocab

    def sounding(self, word: str) -> list[str]:
        """The Latin term (most documents first) that sounds like a Cyrillic word (`подкаст` ~
        `podcast`), if the index has one: for a word no bilingual dictionary translates."""
        for key in dict.fromkeys((sound_key(term(word)), sound_key(word))):
            if len(key) >= 2 and key in self._sounds:
                return [self._terms[self._sounds[key][0]]]
        return []

    @cached_property
    def _terms(self) -> list[str]:
        """Vocabulary terms by column."""
        out = [""] * len(self._vocab)
        for t, col in self._vocab.items():
            out[col] = t
        return out

    def _resolve(self, group: tuple[str, ...]) -> list[int]:
        """The columns one query word stands for (see query_columns)."""
        own = self._vocab.get(group[0])
        if own is not None:
            return [own]
        columns = [self._vocab[alt] for alt in group[1:] if alt in self._vocab]
        if columns:  # Russian typed in Latin letters
            return list(dict.fromkeys(columns))
        typo = self._nearest(group[0])
        if typo is not None:  # a misspelt word: before sounds, so `пороль` is `пароль`, not some `pearl`
            return [typo]
        for alt in group[1:]:  # a product name written as it sounds
            if alt.startswith(SOUND_PREFIX):
                columns.extend(self._sounds.get(alt[len(SOUND_PREFIX):], ())[:EXPANSIONS])
        return list(dict.fromkeys(columns))

    def _nearest(self, word: str) -> int | None:
        """The known term one or two edits from an unknown one (same first letter), if any."""
        if len(word) < TYPO_MIN or any(ch.isdigit() for ch in word):
            return None
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        limit = 1 if len(word) < TYPO_LONG else 2
        pool = [t for n in range(len(word) - limit, len(word) + limit + 1) for t in self._by_initial.get((word[0], n), ())]
        if not pool:
            return None
        best = process.extractOne(word, pool, scorer=Levenshtein.distance, score_cutoff=limit)
        return self._vocab[best[0]] if best is not None else None

    def warm(self) -> None:
        """Build the look-ups of unknown words now (Index starts this on a background thread, so no
        request waits ~0.5 s for them at 10k articles)."""
        _ = self._by_initial, self._sounds

    @cached_property
    def _by_initial(self) -> dict[tuple[str, int], list[str]]:
        """Vocabulary terms by first letter and length (see warm)."""
        out: dict[tuple[str, int], list[str]] = {}
        for t, col in self._vocab.items():
            if len(t) >= TYPO_MIN - 1 and self._idf[col] > 0:
                out.setdefault((t[0], len(t)), []).append(t)
        return out

    @cached_property
    def _sounds(self) -> dict[str, list[int]]:
        """Latin vocabulary terms by sound key, most documents first (see warm)."""
        out: dict[str, list[int]] = {}
        for t, col in self._vocab.items():
            if t.isalpha() and not CYRILLIC.search(t) and self._idf[col] > 0:
                key = sound_key(t)
                if key:
                    out.setdefault(key, []).append(col)
        for cols in out.values():
            cols.sort(key=lambda c: self._idf[c])
        return out

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

    @classmethod
    def load_counts(cls, path: Path) -> "LexicalIndex":
        """Only the vocabulary and raw term counts saved in path: for `build(reuse=...)`, not for scoring."""
        vocab = json.loads((path / "lexical_vocab.json").read_text())
        counts = sparse.load_npz(path / "lexical_tf.npz").tocsr()
        return cls(sparse.csc_matrix((counts.shape[0], 0), dtype=np.float32), vocab, np.zeros(0, dtype=np.float32), counts)
