"""A loaded, searchable index build (builds are written by search/store.py).

Layout of a build directory (format 5)::

    manifest.json      model, dimensions, per-document hashes in row order, calibration
    vectors.npy        one float32 row per distinct embedded chunk text
    vector_keys.npy    a 16-byte digest of each of those texts, so a later build can reuse a vector
    layout.npz         chunk -> vector row and passage; document -> first chunk and first passage
    docs.{base,patch}.json   one record per document: title, aliases, passages, its chunks' texts
                       (a base shared with earlier builds plus this build's patch: search/records.py)
    payloads.{base,patch}.json  the caller's own record per document, if it gave any
    lexical*.{npz,npy,json}  BM25 over passages, with the raw term counts
    prototypes.npz     per-document prototypes (and classifier weights when one was trained)
    dense.faiss        an HNSW (or flat) faiss index, only above HNSW_THRESHOLD vectors

Reads are thread-safe.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import msgspec
import numpy as np
from scipy import sparse

from search.dense import HNSW_THRESHOLD, DenseIndex, inner_products
from search.embed import Embedder
from search.errors import IndexCorruptError
from search.fusion import Calibration, Fusion
from search.glossary import Glossary
from search.lexical import LexicalIndex
from search.model import Document, Hit, Results
from search.phrases import PhraseBook, record_phrases
from search.records import RecordSet
from search.scoring import Candidates, DocModel, score_candidates, spans
from search.text import chunks as split_chunks
from search import analysis
from search.analysis import query_terms

FORMAT = 5  # 4: each distinct vector stored once; 5: per-document records and array layout
# Changing how chunks are cut or embedded changes the vectors: bump it to re-embed everything.
CHUNKING = "v1"
FILES = ("manifest.json", "vectors.npy", "vector_keys.npy", "layout.npz", *RecordSet.files("docs"), "lexical.npz",
         "lexical_tf.npz", "prototypes.npz")
DENSE_FILE = "dense.faiss"
# Up to this many documents every one is scored exactly; above it, the query's neighbourhood is.
EXACT_MAX_DOCS = 2000


def document_hash(doc: Document, model: str) -> str:
    """Content hash of a document as embedded by one model."""
    digest = hashlib.sha256()
    fields = [CHUNKING, model, doc.id, doc.title, str(len(doc.aliases)), *doc.aliases]
    for p in doc.passages:
        fields += [p.id, p.heading, p.text]
    for field in fields:  # length-prefixed: no two different documents give the same bytes
        data = field.encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def text_key(text: str) -> bytes:
    """The digest a vector row is known by: equal embedded texts share one vector."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def document_record(doc: Document, units: list[tuple[int, str, str]]) -> dict:
    """A document as stored in the build's docs records: its fields and the shown text of each chunk."""
    record: dict[str, object] = {"id": doc.id, "title": doc.title, "aliases": list(doc.aliases),
                                 "passages": [{"id": p.id, "heading": p.heading, "text": p.text} for p in doc.passages],
                                 "chunks": [shown for _, shown, _ in units]}
    record["phrases"] = record_phrases(record)
    return record


def lexical_texts(docs: Iterable[dict]) -> list[str]:
    """The text BM25 indexes for each passage of documents (as stored records)."""
    return [" ".join([d["title"], *d["aliases"], p["heading"], p["text"]]) for d in docs for p in d["passages"]]


def embedding_units(doc: Document) -> list[tuple[int, str, str]]:
    """Return (passage number, text shown, text embedded) for each chunk of a document."""
    units: list[tuple[int, str, str]] = [(0, doc.title, doc.title)]
    units.extend((0, alias, alias) for alias in doc.aliases)
    for number, passage in enumerate(doc.passages):
        prefix = passage.heading if passage.heading and passage.heading != doc.title else ""
        for chunk in split_chunks(passage.text):
            units.append((number, chunk, f"{prefix}: {chunk}" if prefix else chunk))
    return units


@dataclass(frozen=True)
class LexicalEvidence:
    """What BM25 says about a query. It needs no query vector: it can be worked out while the
    encoder runs (`Index.lexical_evidence`), off the request's critical path."""

    scores: np.ndarray  # BM25 of every passage
    matches: np.ndarray  # distinct query terms found in every passage
    scale: float  # the best score the query could reach
    query_terms: int
    near: np.ndarray  # documents of the 50 best matching passages (for neighbourhood searches)


CROSSING = ">"  # a tuning key `ru>en`: requests in one language searched as their gloss in another


def crossing(source: str, target: str) -> str:
    """The tuning key of requests in `source` glossed into `target`."""
    return f"{source}{CROSSING}{target}"


class Index:
    """A loaded, searchable index build."""

    def __init__(self, path: Path, embedder: Embedder, preload: bool = True, glossary: Glossary | None = None) -> None:
        self.path = path
        self.embedder = embedder
        self.glossary = glossary  # crosses languages word by word (search/glossary.py); None: it is not done
        try:
            self.manifest = msgspec.json.decode((path / "manifest.json").read_bytes())
            check_manifest(path, self.manifest, embedder.name)
            self.docs: list[dict] = RecordSet(path, "docs").decoded()
            self.vectors = np.load(path / "vectors.npy", mmap_mode=None if preload else "r")
            with np.load(path / "layout.npz") as layout:
                # Chunks with equal embedded text share one vector row.
                self.chunk_vector = layout["chunk_vector"].astype(np.int64)
                self.chunk_passage = layout["chunk_passage"].astype(np.int64)
                self.doc_chunk_start = layout["doc_chunk_start"].astype(np.int64)
                self.doc_passage_start = layout["doc_passage_start"].astype(np.int64)
            self.dense = DenseIndex.load(path / DENSE_FILE) if self.manifest.get("dense_index") else None
            self.lexical = LexicalIndex.load(path)
            self.docmodel = DocModel.load(path)
        except FileNotFoundError as exc:
            raise IndexCorruptError(f"index build {path} is incomplete: {exc.filename} missing") from exc
        except (ValueError, OSError, RuntimeError, KeyError, msgspec.DecodeError) as exc:
            raise IndexCorruptError(f"index build {path} is unreadable: {exc}") from exc
        self.chunk_text: list[str] = [c for d in self.docs for c in d["chunks"]]
        self.passage_doc = np.repeat(np.arange(len(self.docs)), np.diff(self.doc_passage_start))
        self.passage_ids: list[str] = [p["id"] for d in self.docs for p in d["passages"]]
        self.doc_row = {d["id"]: i for i, d in enumerate(self.docs)}
        if (len(self.chunk_vector) != len(self.chunk_text) or len(self.doc_chunk_start) != len(self.docs) + 1
                or (self.dense is not None and len(self.dense) != len(self.vectors))
                or (len(self.chunk_vector) and not 0 <= self.chunk_vector.min() <= self.chunk_vector.max() < len(self.vectors))):
            raise IndexCorruptError(f"index build {path}: vector and chunk counts differ")
        # vector row -> the documents whose chunks use it (CSR), for dense neighbourhoods
        chunk_doc = np.repeat(np.arange(len(self.docs)), np.diff(self.doc_chunk_start))
        order = np.argsort(self.chunk_vector, kind="stable")
        self._vector_docs = chunk_doc[order]
        self._vector_docs_start = np.searchsorted(self.chunk_vector[order], np.arange(len(self.vectors) + 1))
        # a prototype is s/|s| with s the sum of its chunks' vectors, so its cosine to a query is
        # (uses @ vector cosines) / |s|: a sparse product instead of a dense docs x dim one
        self._uses = sparse.csr_matrix(
            (np.ones(len(chunk_doc), dtype=np.float32), (chunk_doc, self.chunk_vector)),
            shape=(len(self.docs), len(self.vectors)))
        self._sum_norms = np.maximum(self.docmodel.typical * np.diff(self.doc_chunk_start), 1e-9).astype(np.float32)
        self.calibration = Calibration.from_dict(self.manifest.get("calibration"))
        self.fusion = Fusion.from_dict(self.manifest.get("fusion"))
        # per request language: fusion weights and calibration fitted on that language's requests
        self.locales = {loc: (Fusion.from_dict(t.get("fusion")), Calibration.from_dict(t.get("calibration")))
                        for loc, t in (self.manifest.get("locales") or {}).items()}
        self.phrases = PhraseBook(self.docs)
        threading.Thread(target=self.lexical.warm, name="kb-lexical-warm", daemon=True).start()

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def created(self) -> float:
        return float(self.manifest.get("created", 0.0))

    def doc_ids(self) -> list[str]:
        return [d["id"] for d in self.docs]

    def tuning(self, locale: str | None = None) -> tuple[Fusion, Calibration]:
        """The fusion weights and calibration for requests in a language (the default ones if none).

        A crossing such as `ru>en` (Russian requests glossed into English, search_across) has a
        fit of its own when one was made, else the default one: neither language's own fit knows
        how sure a gloss is, and the default (English) threshold is the stricter.
        """
        return self.locales.get(locale or "", (self.fusion, self.calibration))

    def document_vectors(self, doc_id: str) -> np.ndarray:
        """The chunk vectors of one document (for 'related' lookups)."""
        row = self.doc_row[doc_id]
        return np.asarray(self.vectors[self.chunk_vector[self.doc_chunk_start[row] : self.doc_chunk_start[row + 1]]])

    # -- search ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 10,
        only: Iterable[str] | None = None,
        vector: np.ndarray | None = None,
        fusion: Fusion | None = None,
        calibration: Calibration | None = None,
        lexical: LexicalEvidence | None = None,
        locale: str | None = None,
    ) -> Results:
        """Rank documents for a query in a language; `only` restricts the result to those document ids."""
        tuned = self.tuning(locale)
        fusion, calibration = fusion or tuned[0], calibration or tuned[1]
        named = self.phrases.row(query)
        cands = self.candidates(query, only=only, vector=vector, fusion=fusion, lexical=lexical, named=named)
        return self.rank(cands, k, fusion, calibration, named=named)

    def gloss(self, query: str) -> str:
        """The request in the words of the KB's other language ('' without a glossary)."""
        return self.glossary.gloss(query, self.lexical.knows, self.lexical.sounding) if self.glossary is not None else ""

    def search_across(
        self, query: str, only: Iterable[str], k: int = 10, locale: str | None = None,
    ) -> Results | None:
        """Rank the documents `only` (another language's) for the request's gloss, tuned for
        `locale` (a crossing such as `ru>en`), or None when there is no glossary or nothing to gloss."""
        text = self.gloss(query)
        if not text:
            return None
        vector = self.embedder.encode_queries([text])[0]
        return self.search(text, k=k, only=only, vector=vector, locale=locale)

    def rows(self, doc_ids: Iterable[str]) -> np.ndarray:
        """Sorted row numbers of documents (unknown ids are skipped): a reusable search scope."""
        return np.array(sorted({self.doc_row[d] for d in doc_ids if d in self.doc_row}), dtype=np.int64)

    def search_scoped(
        self, query: str, scope: np.ndarray, k: int = 10, vector: np.ndarray | None = None,
        lexical: LexicalEvidence | None = None, locale: str | None = None,
    ) -> tuple[Results, Results | None]:
        """Rank within `scope` (rows from `rows`: say, one language's articles) and over everything, scoring once.

        A small KB is scored exactly, so the scoped ranking is a subset of the full one. A large
        KB's candidates are a neighbourhood of the query; when it holds fewer than k scoped
        documents the scope gets its own neighbourhood. The ranking over everything is only
        made when the scoped one is not confident (it is the fallback): otherwise it is None.
        """
        qv = vector if vector is not None else self.embedder.encode_queries([query])[0]
        lexical = lexical or self.lexical_evidence(query)
        fusion, calibration = self.tuning(locale)
        named = self.phrases.row(query)
        everything = self.candidates(query, vector=qv, fusion=fusion, lexical=lexical, named=named)
        if everything is None:
            empty = self.rank(None, k, fusion, calibration)
            return empty, empty
        keep = np.flatnonzero(np.isin(everything.rows, scope, assume_unique=True))
        exact = len(everything) == len(self.docs)
        scoped = everything.subset(keep) if exact or len(keep) >= min(k, len(scope)) else (
            self.candidates(query, scope=scope, vector=qv, fusion=fusion, lexical=lexical, named=named))
        results = self.rank(scoped, k, fusion, calibration, named=named)
        return results, None if results.answered else self.rank(everything, k, fusion, calibration, named=named)

    def rank(
        self, cands: Candidates | None, k: int, fusion: Fusion | None = None, calibration: Calibration | None = None,
        named: int | None = None,
    ) -> Results:
        """Order candidates by fused score and turn the top k into hits with confidences.

        `named` is the row of a document the request names by a writer's phrase (search/phrases.py):
        it goes first and answers, with at least the threshold as its confidence.
        """
        fusion = fusion or self.fusion
        calibration = calibration or self.calibration
        if cands is None or not len(cands):
            return Results(hits=(), answered=False, threshold=calibration.threshold)
        m = cands.matrix
        scores = m @ fusion.vector()
        order = np.argsort(-scores, kind="stable")
        first = np.flatnonzero(cands.rows == named) if named is not None else np.zeros(0, dtype=np.int64)
        if len(first):
            order = np.concatenate([first, order[order != first[0]]])
        # margins compare with the runner-up of the same ranking
        best = m.max(axis=0)
        runner_up = np.partition(m, -2, axis=0)[-2] if len(m) > 1 else np.zeros(m.shape[1])
        hits = []
        for rank, i in enumerate(order[:k]):
            nxt = order[rank + 1] if rank + 1 < len(order) else None
            other_best = np.where(m[i] >= best, runner_up, best) if len(m) > 1 else np.zeros(m.shape[1])
            passage, chunk, coverage = cands.locate(int(i), self)
            features = {
                "dense": float(m[i, 0]),
                "centroid": float(m[i, 1]),
                "lexical": float(m[i, 2]),
                "title": float(m[i, 3]),
                "classifier": float(np.exp(m[i, 4])) if self.docmodel.trained else 0.0,
                "score": float(scores[i]),
                "margin": float(scores[i] - (scores[nxt] if nxt is not None else 0.0)),
                "dense_margin": float(m[i, 0] - other_best[0]),
                "centroid_margin": float(m[i, 1] - other_best[1]),
                "typical": float(m[i, 1] - cands.typical[i]),
                "coverage": coverage,
                "query_terms": float(min(cands.query_terms, 10)) / 10.0,
            }
            confidence = calibration.confidence(features)
            if rank == 0 and len(first):
                confidence = max(confidence, calibration.threshold)
            hits.append(
                Hit(
                    doc_id=self.docs[cands.rows[i]]["id"],
                    passage_id=self.passage_ids[passage],
                    score=float(scores[i]),
                    confidence=confidence,
                    dense=features["dense"],
                    lexical=features["lexical"],
                    chunk=self.chunk_text[chunk],
                    features=features,
                )
            )
        answered = bool(hits) and hits[0].confidence >= calibration.threshold
        return Results(hits=tuple(hits), answered=answered, threshold=calibration.threshold)

    def lexical_evidence(self, query: str) -> LexicalEvidence:
        """BM25 evidence for a query (see LexicalEvidence)."""
        scores, matches = self.lexical.score_matches(query)
        near = np.zeros(0, dtype=np.int64)
        if len(self.docs) > EXACT_MAX_DOCS:
            # the 50 best passages, partitioned among the matching ones only (argpartition over an
            # array of mostly equal zeros is pathologically slow: 4.4 ms for 35k passages)
            matching = np.flatnonzero(scores)
            if len(matching) > 50:
                matching = matching[np.argpartition(scores[matching], len(matching) - 50)[-50:]]
            near = self.passage_doc[matching]
        return LexicalEvidence(scores, matches, max(self.lexical.max_score(query), 1e-9), len({g[0] for g in query_terms(query)}), near)

    def candidates(
        self,
        query: str,
        only: Iterable[str] | None = None,
        vector: np.ndarray | None = None,
        fusion: Fusion | None = None,
        lexical: LexicalEvidence | None = None,
        scope: np.ndarray | None = None,
        named: int | None = None,
    ) -> Candidates | None:
        """The documents worth ranking for a query, with their evidence (used to fit fusion).

        `only` (document ids) or `scope` (their rows, from `rows`) restricts the candidates; the
        `named` document (see rank) is always one of them when the scope allows it.
        """
        if not self.docs:
            return None
        fusion = fusion or self.fusion
        qv = vector if vector is not None else self.embedder.encode_queries([query])[0]
        lexical = lexical or self.lexical_evidence(query)
        if scope is None and only is not None:
            scope = self.rows(only)
        allowed = None if scope is None else set(scope.tolist())
        # Up to the size where faiss would search exhaustively anyway, one matrix-vector product
        # scores every distinct vector: it finds the dense neighbourhood and feeds the evidence.
        sims = inner_products(self.vectors, qv) if len(self.vectors) <= HNSW_THRESHOLD else None
        found = self._candidates(qv, allowed, lexical.near, sims)
        if named is not None and (allowed is None or named in allowed) and named not in found:
            found = sorted([*found, named])
        rows = np.asarray(found, dtype=np.int64)
        if not len(rows):
            return None
        return score_candidates(self, qv, rows, lexical.scores, lexical.matches, lexical.scale, lexical.query_terms,
                                fusion.vector(), sims)

    def _candidates(
        self, qv: np.ndarray, allowed: set[int] | None, lexical_near: np.ndarray, sims: np.ndarray | None = None
    ) -> list[int]:
        """Documents worth scoring exactly: the dense and lexical neighbourhoods of the query."""
        if allowed is not None and len(allowed) <= EXACT_MAX_DOCS:
            return sorted(allowed)
        if allowed is None and len(self.docs) <= EXACT_MAX_DOCS:
            return list(range(len(self.docs)))  # small KBs are scored exactly
        want = 200 if allowed is None else 1000
        if sims is not None:
            top = np.argpartition(sims, max(len(sims) - want, 0))[-want:]
            near = top[np.argsort(-sims[top], kind="stable")]
        else:
            assert self.dense is not None, "an index without a dense index scores every vector"
            _, ids = self.dense.search(qv[None, :], want)
            near = ids[0][ids[0] >= 0]
        starts, ends = self._vector_docs_start[near], self._vector_docs_start[near + 1]
        using = self._vector_docs[spans(starts, ends - starts)]
        # the documents using the nearest vectors, nearest first, until there are enough
        unique, first = np.unique(using, return_index=True)
        rows = set(unique[np.argsort(first, kind="stable")[:want]].tolist())
        rows.update(lexical_near.tolist())
        # the prototype and classifier neighbourhoods catch articles no single chunk is near
        per_docs = [self._uses @ sims / self._sum_norms if sims is not None else self.docmodel.centroids @ qv]
        if self.docmodel.trained:
            per_docs.append(self.docmodel.classifier_logprob(qv))
        for per_doc in per_docs:
            rows.update(np.argpartition(per_doc, max(len(per_doc) - 50, 0))[-50:].tolist())
        if allowed is not None:
            rows &= allowed
        return sorted(rows)


def check_manifest(path: Path, manifest: dict, model: str, terms: bool = True) -> None:
    """IndexCorruptError unless a build has this format, was embedded by this model and (with
    `terms`) has its BM25 terms from this version of the text analysis."""
    if manifest.get("format") != FORMAT:
        raise IndexCorruptError(f"index build {path} has format {manifest.get('format')}, need {FORMAT}: run `kb index`")
    if terms and manifest.get("analysis", "1") != analysis.VERSION:
        raise IndexCorruptError(f"index build {path} was built with text analysis {manifest.get('analysis', '1')}, "
                                f"need {analysis.VERSION}: run `kb index`")
    if manifest.get("model") != model:
        raise IndexCorruptError(
            f"index was built with model {manifest.get('model')!r}, but the embedder is {model!r}: rebuild it"
        )


__all__ = ["Index", "LexicalEvidence", "check_manifest", "document_hash", "document_record", "embedding_units", "text_key"]
