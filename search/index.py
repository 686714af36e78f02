"""A persisted hybrid index: build (incrementally), load and search.

Layout of an index root::

    root/current            -> builds/<name>   (symlink, replaced atomically)
    root/builds/<name>/manifest.json           model, dimensions, per-document hashes, calibration
    root/builds/<name>/vectors.npy             one float32 row per distinct chunk text
    root/builds/<name>/dense.faiss             faiss index whose ids are chunk rows
    root/builds/<name>/docs.json               documents, passages, chunks and each chunk's vector row
    root/builds/<name>/lexical*.{npz,npy,json} BM25 over passages

Reads are thread-safe. Builds never touch a build that is being served: a new build directory is
written beside the live one and the `current` link is swapped in one rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import msgspec
import numpy as np
from scipy import sparse

from search.dense import HNSW_THRESHOLD, DenseIndex
from search.embed import Embedder
from search.errors import IndexCorruptError, IndexMissingError
from search.fusion import Calibration, Fusion
from search.lexical import LexicalIndex
from search.model import Document, Hit, Passage, Results
from search.scoring import Candidates, DocModel, score_candidates
from search.text import chunks as split_chunks
from search.text import terms

FORMAT = 4  # 3: per-document prototypes and classifier; 4: each distinct vector stored once
# Changing how chunks are cut or embedded changes the vectors: bump it to re-embed everything.
CHUNKING = "v1"
_FILES = ("manifest.json", "vectors.npy", "dense.faiss", "docs.json", "lexical.npz", "prototypes.npz")


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


def _as_dict(doc: Document) -> dict:
    """dataclasses.asdict for a Document, without its deep-copying cost on 10k documents."""
    return {"id": doc.id, "title": doc.title, "aliases": list(doc.aliases),
            "passages": [{"id": p.id, "heading": p.heading, "text": p.text} for p in doc.passages]}


def lexical_texts(docs: Iterable[dict]) -> list[str]:
    """The text BM25 indexes for each passage of documents (as stored in docs.json)."""
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
class BuildReport:
    """What a build did."""

    path: Path
    documents: int
    passages: int
    chunks: int
    embedded_documents: int
    embedded_chunks: int
    removed_documents: int
    seconds: float


class Index:
    """A loaded, searchable index build."""

    def __init__(self, path: Path, embedder: Embedder, preload: bool = True) -> None:
        self.path = path
        self.embedder = embedder
        try:
            self.manifest = json.loads((path / "manifest.json").read_text())
            data = json.loads((path / "docs.json").read_text())
            self.vectors = np.load(path / "vectors.npy", mmap_mode=None if preload else "r")
            self.dense = DenseIndex.load(path / "dense.faiss")
            self.lexical = LexicalIndex.load(path)
            self.docmodel = DocModel.load(path)
        except FileNotFoundError as exc:
            raise IndexCorruptError(f"index build {path} is incomplete: {exc.filename} missing") from exc
        except (ValueError, OSError, RuntimeError) as exc:
            raise IndexCorruptError(f"index build {path} is unreadable: {exc}") from exc
        if self.manifest.get("format") != FORMAT:
            raise IndexCorruptError(f"index build {path} has format {self.manifest.get('format')}, need {FORMAT}")
        if self.manifest.get("model") != embedder.name:
            raise IndexCorruptError(
                f"index was built with model {self.manifest.get('model')!r}, "
                f"but the embedder is {embedder.name!r}: rebuild it"
            )
        self.docs: list[dict] = data["docs"]
        self.chunk_text: list[str] = data["chunks"]
        # Chunks with equal embedded text share one vector row (and one entry in the dense index).
        self.chunk_vector = np.asarray(data["chunk_vector"], dtype=np.int64)
        self.chunk_passage = np.asarray(data["chunk_passage"], dtype=np.int64)
        self.passage_doc = np.asarray(data["passage_doc"], dtype=np.int64)
        self.doc_chunk_start = np.asarray(data["doc_chunk_start"], dtype=np.int64)
        self.doc_passage_start = np.asarray(data["doc_passage_start"], dtype=np.int64)
        self.passage_ids: list[str] = [p["id"] for d in self.docs for p in d["passages"]]
        self.doc_row = {d["id"]: i for i, d in enumerate(self.docs)}
        if (len(self.chunk_vector) != len(self.chunk_text) or len(self.dense) != len(self.vectors)
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

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def created(self) -> float:
        return float(self.manifest.get("created", 0.0))

    def doc_ids(self) -> list[str]:
        return [d["id"] for d in self.docs]

    def chunk_range(self, doc_id: str) -> slice:
        row = self.doc_row[doc_id]
        return slice(int(self.doc_chunk_start[row]), int(self.doc_chunk_start[row + 1]))

    def units(self, doc_id: str) -> list[tuple[int, str, str]]:
        """A stored document's embedding units, as `embedding_units` cut them (no re-chunking)."""
        row = self.doc_row[doc_id]
        doc = self.docs[row]
        span = self.chunk_range(doc_id)
        first = int(self.doc_passage_start[row])
        plain = 1 + len(doc["aliases"])  # the title and aliases are embedded as they are
        out = []
        for k, (shown, passage) in enumerate(zip(self.chunk_text[span], self.chunk_passage[span].tolist())):
            number = passage - first
            heading = doc["passages"][number]["heading"]
            prefixed = k >= plain and heading and heading != doc["title"]
            out.append((number, shown, f"{heading}: {shown}" if prefixed else shown))
        return out

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
    ) -> Results:
        """Rank documents for a query; `only` restricts the result to those document ids."""
        fusion = fusion or self.fusion
        cands = self.candidates(query, only=only, vector=vector, fusion=fusion)
        return self.rank(cands, k, fusion, calibration or self.calibration)

    def rows(self, doc_ids: Iterable[str]) -> np.ndarray:
        """Sorted row numbers of documents (unknown ids are skipped): a reusable search scope."""
        return np.array(sorted({self.doc_row[d] for d in doc_ids if d in self.doc_row}), dtype=np.int64)

    def search_scoped(
        self, query: str, scope: np.ndarray, k: int = 10, vector: np.ndarray | None = None
    ) -> tuple[Results, Results | None]:
        """Rank within `scope` (rows from `rows`: say, one language's articles) and over everything, scoring once.

        A small KB is scored exactly, so the scoped ranking is a subset of the full one. A large
        KB's candidates are a neighbourhood of the query; when it holds fewer than k scoped
        documents the scope gets its own neighbourhood. The ranking over everything is only
        made when the scoped one is not confident (it is the fallback): otherwise it is None.
        """
        qv = vector if vector is not None else self.embedder.encode_queries([query])[0]
        everything = self.candidates(query, vector=qv)
        if everything is None:
            empty = self.rank(None, k)
            return empty, empty
        keep = np.flatnonzero(np.isin(everything.rows, scope, assume_unique=True))
        exact = len(everything) == len(self.docs)
        scoped = everything.subset(keep) if exact or len(keep) >= min(k, len(scope)) else (
            self.candidates(query, only=[self.docs[r]["id"] for r in scope], vector=qv))
        results = self.rank(scoped, k)
        return results, None if results.answered else self.rank(everything, k)

    def rank(
        self, cands: Candidates | None, k: int, fusion: Fusion | None = None, calibration: Calibration | None = None
    ) -> Results:
        """Order candidates by fused score and turn the top k into hits with confidences."""
        fusion = fusion or self.fusion
        calibration = calibration or self.calibration
        if cands is None or not len(cands):
            return Results(hits=(), answered=False, threshold=calibration.threshold)
        m = cands.matrix
        scores = m @ fusion.vector()
        order = np.argsort(-scores, kind="stable")
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
            hits.append(
                Hit(
                    doc_id=self.docs[cands.rows[i]]["id"],
                    passage_id=self.passage_ids[passage],
                    score=float(scores[i]),
                    confidence=calibration.confidence(features),
                    dense=features["dense"],
                    lexical=features["lexical"],
                    chunk=self.chunk_text[chunk],
                    features=features,
                )
            )
        answered = bool(hits) and hits[0].confidence >= calibration.threshold
        return Results(hits=tuple(hits), answered=answered, threshold=calibration.threshold)

    def candidates(
        self,
        query: str,
        only: Iterable[str] | None = None,
        vector: np.ndarray | None = None,
        fusion: Fusion | None = None,
    ) -> Candidates | None:
        """The documents worth ranking for a query, with their evidence (used to fit fusion)."""
        if not self.docs:
            return None
        fusion = fusion or self.fusion
        qv = vector if vector is not None else self.embedder.encode_queries([query])[0]
        allowed = None if only is None else set(self.rows(only).tolist())
        lex_scores, lex_matches = self.lexical.score_matches(query)
        # Up to the size where faiss would search exhaustively anyway, one matrix-vector product
        # scores every distinct vector: it finds the dense neighbourhood and feeds the evidence.
        sims = np.asarray(self.vectors @ qv, dtype=np.float32) if len(self.vectors) <= HNSW_THRESHOLD else None
        rows = np.asarray(self._candidates(query, qv, allowed, lex_scores, sims), dtype=np.int64)
        if not len(rows):
            return None
        lex_scale = max(self.lexical.max_score(query), 1e-9)
        query_terms = len(set(terms(query)))
        return score_candidates(self, qv, rows, lex_scores, lex_matches, lex_scale, query_terms, fusion.vector(), sims)

    def _candidates(
        self, query: str, qv: np.ndarray, allowed: set[int] | None, lex: np.ndarray, sims: np.ndarray | None = None
    ) -> list[int]:
        """Documents worth scoring exactly: the dense and lexical neighbourhoods of the query."""
        if allowed is not None and len(allowed) <= 2000:
            return sorted(allowed)
        if allowed is None and len(self.docs) <= 2000:
            return list(range(len(self.docs)))  # small KBs are scored exactly
        want = 200 if allowed is None else 1000
        if sims is not None:
            top = np.argpartition(sims, max(len(sims) - want, 0))[-want:]
            near = top[np.argsort(-sims[top], kind="stable")]
        else:
            _, ids = self.dense.search(qv[None, :], want)
            near = ids[0][ids[0] >= 0]
        starts, ends = self._vector_docs_start[near], self._vector_docs_start[near + 1]
        counts = ends - starts
        using = self._vector_docs[np.repeat(starts - (counts.cumsum() - counts), counts) + np.arange(counts.sum())]
        # the documents using the nearest vectors, nearest first, until there are enough
        unique, first = np.unique(using, return_index=True)
        rows = set(unique[np.argsort(first, kind="stable")[:want]].tolist())
        if lex.any():
            top = np.argpartition(lex, max(len(lex) - 50, 0))[-50:]
            rows.update(int(self.passage_doc[p]) for p in top if lex[p] > 0)
        # the prototype and classifier neighbourhoods catch articles no single chunk is near
        per_docs = [self._uses @ sims / self._sum_norms if sims is not None else self.docmodel.centroids @ qv]
        if self.docmodel.trained:
            per_docs.append(self.docmodel.classifier_logprob(qv))
        for per_doc in per_docs:
            rows.update(np.argpartition(per_doc, max(len(per_doc) - 50, 0))[-50:].tolist())
        if allowed is not None:
            rows &= allowed
        return sorted(rows)


class IndexStore:
    """An index root directory holding builds and the `current` link to the live one."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def current_link(self) -> Path:
        return self.root / "current"

    def current_path(self) -> Path:
        """The live build directory, or IndexMissingError."""
        link = self.current_link
        if not link.is_symlink() and not link.exists():
            raise IndexMissingError(f"no index in {self.root}: run `kb index` first")
        target = link.resolve()
        missing = [name for name in _FILES if not (target / name).exists()]
        if missing:
            raise IndexCorruptError(f"index build {target} is incomplete: missing {', '.join(missing)}")
        return target

    def version(self) -> str | None:
        """A cheap token that changes whenever a new build goes live."""
        try:
            return os.readlink(self.current_link)
        except OSError:
            return None

    def load(self, embedder: Embedder) -> Index:
        return Index(self.current_path(), embedder)

    def load_previous(self, embedder: Embedder) -> Index | None:
        """The live build, or None if there is none or it cannot be reused."""
        try:
            return self.load(embedder)
        except (IndexMissingError, IndexCorruptError):
            return None

    def build(
        self,
        documents: Sequence[Document],
        embedder: Embedder,
        calibration: Calibration | None = None,
        fusion: Fusion | None = None,
        dense_kind: str = "auto",
        progress: Callable[[int], None] | None = None,
        on_total: Callable[[int], None] | None = None,
        extra: dict | None = None,
        files: dict[str, str | bytes] | None = None,
    ) -> BuildReport:
        """Build a new index from documents, re-embedding only what changed, then swap it in."""
        started = time.perf_counter()
        previous = self.load_previous(embedder)
        old_hashes: dict[str, str] = previous.manifest["docs"] if previous else {}
        seen: set[str] = set()
        for doc in documents:
            if doc.id in seen:
                raise ValueError(f"duplicate document id {doc.id!r}")
            if not doc.passages:  # its title chunk would otherwise belong to the next document
                raise ValueError(f"document {doc.id!r} has no passages")
            seen.add(doc.id)
        hashes = {doc.id: document_hash(doc, embedder.name) for doc in documents}

        fresh_docs = [
            i for i, doc in enumerate(documents)
            if previous is None or old_hashes.get(doc.id) != hashes[doc.id] or doc.id not in previous.doc_row
        ]
        fresh_set = set(fresh_docs)
        # unchanged documents keep their chunks and vectors; only changed ones are cut again
        all_units = [embedding_units(doc) if i in fresh_set else previous.units(doc.id)  # type: ignore[union-attr]
                     for i, doc in enumerate(documents)]
        # Equal texts get one vector: boilerplate sections and per-team copies of an article are
        # embedded, stored and searched once.
        old_row: dict[str, int] = {}  # embedded text -> its row in the previous build's vectors
        if previous is not None:  # every text the live build embedded, changed articles' included
            kept = {doc.id: all_units[i] for i, doc in enumerate(documents) if i not in fresh_set}
            for doc_id in previous.doc_ids():
                rows = previous.chunk_vector[previous.chunk_range(doc_id)].tolist()
                for unit, row in zip(kept.get(doc_id) or previous.units(doc_id), rows):
                    old_row.setdefault(unit[2], row)
        texts = list(dict.fromkeys(u[2] for i in fresh_docs for u in all_units[i] if u[2] not in old_row))
        if on_total:
            on_total(len(texts))
        fresh_vectors = embedder.encode_documents(texts, progress=progress)
        new_row = {text: row for row, text in enumerate(texts)}

        dim = embedder.dim
        slot: dict[str, int] = {}
        chunk_vector: list[int] = []
        chunk_text: list[str] = []
        chunk_passage: list[int] = []
        passage_doc: list[int] = []
        doc_chunk_start = [0]
        doc_passage_start = [0]
        docs_out = []
        for i, doc in enumerate(documents):
            units = all_units[i]
            base = doc_passage_start[-1]
            for number, shown, embedded in units:
                chunk_vector.append(slot.setdefault(embedded, len(slot)))
                chunk_text.append(shown)
                chunk_passage.append(base + number)
            passage_doc.extend([i] * len(doc.passages))
            doc_chunk_start.append(doc_chunk_start[-1] + len(units))
            doc_passage_start.append(base + len(doc.passages))
            docs_out.append(_as_dict(doc))
        vectors = np.zeros((len(slot), dim), dtype=np.float32)
        if slot:
            ordered = list(slot)  # slot rows are 0..n-1 in insertion order
            reused = np.array([i for i, t in enumerate(ordered) if t in old_row], dtype=np.int64)
            if len(reused):
                vectors[reused] = previous.vectors[[old_row[ordered[i]] for i in reused]]  # type: ignore[union-attr]
            made = np.array([i for i, t in enumerate(ordered) if t not in old_row], dtype=np.int64)
            if len(made):
                vectors[made] = fresh_vectors[[new_row[ordered[i]] for i in made]]
        chunk_vectors = np.asarray(chunk_vector, dtype=np.int64)

        passage_texts = lexical_texts(docs_out)
        reuse = None
        if previous is not None:
            try:
                reuse = (previous.lexical.with_counts(previous.path), lexical_texts(previous.docs))
            except (OSError, ValueError):
                reuse = None  # tokenise everything again
        name = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.time_ns() % 1_000_000:06d}"
        builds = self.root / "builds"
        target = builds / name
        tmp = builds / (name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=False)
        try:
            np.save(tmp / "vectors.npy", vectors)
            ids = np.arange(len(vectors), dtype=np.int64)
            DenseIndex.build(vectors, ids, kind=dense_kind).save(tmp / "dense.faiss")
            LexicalIndex.build(passage_texts, reuse=reuse).save(tmp)
            chunk_doc = np.repeat(np.arange(len(documents)), np.diff(doc_chunk_start))
            start = None
            if previous is not None and previous.docmodel.trained:
                kept = [previous.doc_row.get(doc.id) for doc in documents]
                weights = np.zeros((len(documents), dim), dtype=np.float32)
                bias = np.zeros(len(documents), dtype=np.float32)
                for i, row in enumerate(kept):
                    if row is not None:
                        weights[i], bias[i] = previous.docmodel.weights[row], previous.docmodel.bias[row]
                start = (weights, bias)
            DocModel.build(vectors, chunk_vectors, chunk_doc, len(documents), start=start).save(tmp)
            (tmp / "docs.json").write_bytes(msgspec.json.encode({
                "docs": docs_out,
                "chunks": chunk_text,
                "chunk_vector": chunk_vector,
                "chunk_passage": chunk_passage,
                "passage_doc": passage_doc,
                "doc_chunk_start": doc_chunk_start,
                "doc_passage_start": doc_passage_start,
            }))
            for fname, content in (files or {}).items():  # the caller's own data, swapped with the index
                target_file = tmp / Path(fname).name
                target_file.write_bytes(content) if isinstance(content, bytes) else target_file.write_text(content)
            if calibration is None and previous is not None:
                calibration = previous.calibration
            if fusion is None and previous is not None:
                fusion = previous.fusion
            manifest = {
                "format": FORMAT,
                "chunking": CHUNKING,
                "model": embedder.name,
                "dim": dim,
                "created": time.time(),
                "dense_kind": dense_kind,
                "counts": {"documents": len(documents), "passages": len(passage_doc), "chunks": len(chunk_text),
                           "vectors": len(vectors)},
                "docs": hashes,
                "calibration": (calibration or Calibration()).to_dict(),
                "fusion": (fusion or Fusion()).to_dict(),
                **(extra or {}),
            }
            # The manifest is written last: a build without one is incomplete by definition.
            (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
            _fsync_tree(tmp)
            os.rename(tmp, target)
            self._swap(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune(keep=target)
        removed = len(set(old_hashes) - set(hashes))
        return BuildReport(
            path=target,
            documents=len(documents),
            passages=len(passage_doc),
            chunks=len(chunk_text),
            embedded_documents=len(fresh_docs),
            embedded_chunks=len(texts),
            removed_documents=removed,
            seconds=time.perf_counter() - started,
        )

    def _swap(self, target: Path) -> None:
        link_tmp = self.root / f".current-{os.getpid()}-{time.time_ns()}"
        os.symlink(os.path.relpath(target, self.root), link_tmp)
        os.replace(link_tmp, self.current_link)  # atomic on POSIX
        _fsync_dir(self.root)

    def _prune(self, keep: Path, spare: int = 2) -> None:
        """Remove old builds, keeping the live one and a few before it for readers in flight."""
        builds = sorted(p for p in (self.root / "builds").iterdir() if p.is_dir())
        old = [p for p in builds if p != keep and not p.name.endswith(".tmp")]
        for path in old[:-spare] if spare else old:
            shutil.rmtree(path, ignore_errors=True)
        # leftovers of crashed builds older than a minute
        for path in builds:
            if path.name.endswith(".tmp") and time.time() - path.stat().st_mtime > 60:
                shutil.rmtree(path, ignore_errors=True)


def _fsync_tree(path: Path) -> None:
    for child in path.iterdir():
        with open(child, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["BuildReport", "Index", "IndexStore", "Passage", "document_hash", "embedding_units"]
