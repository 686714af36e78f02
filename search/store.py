"""An index root: builds written beside the live one and swapped in atomically.

Layout of an index root::

    root/current            -> builds/<name>   (symlink, replaced atomically)
    root/builds/<name>/...                     one build (see search/index.py for its files)

A build is made from the previous one plus what changed. Unchanged documents are carried over as
stored bytes and array slices, not parsed, cut or tokenised again; only changed documents are
chunked, and only texts no build has embedded yet are encoded. That keeps the re-index of one
article in a 10,000-article KB well under a second, with the same result as a build from scratch.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import msgspec
import numpy as np

from search import analysis
from search.dense import HNSW_THRESHOLD, DenseIndex
from search.embed import Embedder
from search.errors import IndexCorruptError, IndexMissingError, StaleBuildError
from search.fusion import Calibration, Fusion
from search.glossary import Glossary
from search.index import (CHUNKING, DENSE_FILE, FILES, FORMAT, Index, check_manifest, document_hash,
                          document_record, embedding_units, lexical_texts, text_key)
from search.lexical import LexicalIndex
from search.model import Document
from search.phrases import record_phrases
from search.records import RecordSet
from search.scoring import DocModel, spans


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


class Stored:
    """The parts of a stored build that the next build reuses, read without making it searchable."""

    def __init__(self, path: Path, model: str) -> None:
        self.path = path
        try:
            self.manifest = msgspec.json.decode((path / "manifest.json").read_bytes())
            check_manifest(path, self.manifest, model, terms=False)  # stale terms are recounted
            self.hashes: dict[str, str] = self.manifest["docs"]  # in row order
            self.docs = RecordSet(path, "docs")
            self.payloads = RecordSet(path, "payloads") if (path / RecordSet.files("payloads")[1]).exists() else None
            self.vectors = np.load(path / "vectors.npy", mmap_mode="r")
            self.keys = np.load(path / "vector_keys.npy")
            with np.load(path / "layout.npz") as layout:
                self.chunk_vector = layout["chunk_vector"].astype(np.int64)
                self.chunk_passage = layout["chunk_passage"].astype(np.int64)
                self.doc_chunk_start = layout["doc_chunk_start"].astype(np.int64)
                self.doc_passage_start = layout["doc_passage_start"].astype(np.int64)
        except FileNotFoundError as exc:
            raise IndexCorruptError(f"index build {path} is incomplete: {exc.filename} missing") from exc
        except (ValueError, OSError, KeyError, msgspec.DecodeError) as exc:
            raise IndexCorruptError(f"index build {path} is unreadable: {exc}") from exc
        self.row = {doc_id: i for i, doc_id in enumerate(self.hashes)}
        if not (len(self.row) == len(self.docs) == len(self.doc_chunk_start) - 1 == len(self.doc_passage_start) - 1
                and (self.payloads is None or len(self.payloads) == len(self.row))
                and len(self.keys) == len(self.vectors)):
            raise IndexCorruptError(f"index build {path}: document, chunk and vector counts differ")

    def lexical(self) -> LexicalIndex | None:
        """The stored term counts, or None when they came from another version of the text analysis."""
        if self.manifest.get("analysis", "1") != analysis.VERSION:
            return None
        return LexicalIndex.load_counts(self.path)

    def classifier(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The classifier weights and biases per document row, or None if none was trained."""
        return DocModel.load_classifier(self.path)


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
        missing = [name for name in FILES if not (target / name).exists()]
        if missing:
            raise IndexCorruptError(f"index build {target} is incomplete: missing {', '.join(missing)}")
        return target

    def version(self) -> str | None:
        """A cheap token that changes whenever a new build goes live."""
        try:
            return os.readlink(self.current_link)
        except OSError:
            return None

    def load(self, embedder: Embedder, glossary: Glossary | None = None) -> Index:
        return Index(self.current_path(), embedder, glossary=glossary)

    def _previous(self, model: str, base: Path | None) -> Stored | None:
        """The build to reuse: `base` if given (it must be readable), else the live one if usable."""
        if base is not None:
            return Stored(Path(base), model)
        try:
            return Stored(self.current_path(), model)
        except (IndexMissingError, IndexCorruptError):
            return None  # nothing to reuse: everything is embedded

    def build(
        self,
        documents: Sequence[Document | str],
        embedder: Embedder,
        calibration: Calibration | None = None,
        fusion: Fusion | None = None,
        dense_kind: str = "auto",
        progress: Callable[[int], None] | None = None,
        on_total: Callable[[int], None] | None = None,
        extra: dict | None = None,
        files: dict[str, str | bytes] | None = None,
        base: Path | None = None,
        payloads: Sequence[bytes | None] | None = None,
        locales: dict[str, tuple[Fusion, Calibration]] | None = None,
    ) -> BuildReport:
        """Build a new index from documents, re-embedding only what changed, then swap it in.

        A document may be given as its id alone: it is then carried over unchanged from `base`
        (a build directory; the live build when None), without being read or hashed again.
        `payloads` are the caller's own JSON record per document, read back with `payloads()`;
        None keeps a carried document's stored one. `locales` are fusion weights and calibrations
        per request language (Index.tuning); None keeps the previous build's.
        """
        started = time.perf_counter()
        previous = self._previous(embedder.name, base)
        hashes, source, fresh = _sort_out(documents, previous, embedder.name)

        # Changed documents are cut into chunks; a text any build embedded keeps its vector, and
        # equal texts get one vector (boilerplate sections and per-team copies are embedded once).
        units = {i: embedding_units(documents[i]) for i in fresh}  # type: ignore[arg-type]
        stored_rows = len(previous.vectors) if previous is not None else 0
        known = dict(zip(previous.keys.tolist(), range(stored_rows))) if previous is not None else {}
        new_keys: dict[bytes, int] = {}
        texts: list[str] = []
        fresh_rows: dict[int, list[int]] = {}
        for i in fresh:
            rows = fresh_rows[i] = []
            for _, _, embedded in units[i]:
                key = text_key(embedded)
                row = known.get(key, new_keys.get(key))
                if row is None:
                    row = new_keys[key] = stored_rows + len(texts)
                    texts.append(embedded)
                rows.append(row)
        if on_total:
            on_total(len(texts))
        fresh_vectors = embedder.encode_documents(texts, progress=progress)

        # The layout: carried documents' chunk and passage spans are copied in one gather each.
        kept = np.flatnonzero(source >= 0)
        src = source[kept]
        chunk_n = np.zeros(len(documents), dtype=np.int64)
        passage_n = np.zeros(len(documents), dtype=np.int64)
        if previous is not None:
            chunk_n[kept] = np.diff(previous.doc_chunk_start)[src]
            passage_n[kept] = np.diff(previous.doc_passage_start)[src]
        for i in fresh:
            chunk_n[i], passage_n[i] = len(units[i]), len(documents[i].passages)  # type: ignore[union-attr]
        doc_chunk_start = np.concatenate([[0], chunk_n.cumsum()]).astype(np.int64)
        doc_passage_start = np.concatenate([[0], passage_n.cumsum()]).astype(np.int64)
        chunk_vector = np.zeros(int(doc_chunk_start[-1]), dtype=np.int64)
        chunk_passage = np.zeros(int(doc_chunk_start[-1]), dtype=np.int64)
        passage_source = np.full(int(doc_passage_start[-1]), -1, dtype=np.int64)
        if previous is not None and len(kept):
            to, of = spans(doc_chunk_start[kept], chunk_n[kept]), spans(previous.doc_chunk_start[src], chunk_n[kept])
            chunk_vector[to] = previous.chunk_vector[of]
            moved = np.repeat(doc_passage_start[kept] - previous.doc_passage_start[src], chunk_n[kept])
            chunk_passage[to] = previous.chunk_passage[of] + moved
            passage_source[spans(doc_passage_start[kept], passage_n[kept])] = spans(
                previous.doc_passage_start[src], passage_n[kept])
        records: list[bytes | int] = source.tolist()  # carried rows, and fresh documents' records below
        passage_texts: list[str | None] = [None] * len(passage_source)
        for i in fresh:
            a, b = doc_chunk_start[i], doc_chunk_start[i + 1]
            chunk_vector[a:b] = fresh_rows[i]
            chunk_passage[a:b] = doc_passage_start[i] + np.array([u[0] for u in units[i]], dtype=np.int64)
            record = document_record(documents[i], units[i])  # type: ignore[arg-type]
            records[i] = msgspec.json.encode(record)
            passage_texts[doc_passage_start[i] : doc_passage_start[i + 1]] = lexical_texts([record])

        # Vectors no document uses any more are dropped; rows are renumbered in stored order.
        all_vectors = np.concatenate([previous.vectors, fresh_vectors]) if previous is not None else fresh_vectors
        all_keys = np.array([*(previous.keys.tolist() if previous is not None else []), *new_keys], dtype="S16")
        used = np.unique(chunk_vector)
        renumber = np.zeros(len(all_vectors), dtype=np.int64)
        renumber[used] = np.arange(len(used))
        vectors = np.ascontiguousarray(np.asarray(all_vectors, dtype=np.float32).reshape(-1, embedder.dim)[used])
        chunk_vector = renumber[chunk_vector]

        name = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.time_ns() % 1_000_000:06d}"
        builds = self.root / "builds"
        target = builds / name
        tmp = builds / (name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=False)
        try:
            np.save(tmp / "vectors.npy", vectors)
            np.save(tmp / "vector_keys.npy", all_keys[used])
            np.savez(tmp / "layout.npz", **{key: array.astype(np.int32) for key, array in (  # type: ignore[arg-type]
                ("chunk_vector", chunk_vector), ("chunk_passage", chunk_passage),
                ("doc_chunk_start", doc_chunk_start), ("doc_passage_start", doc_passage_start))})
            # Above HNSW_THRESHOLD searches go through faiss; below it one product scores every vector.
            dense_index = len(vectors) > HNSW_THRESHOLD
            if dense_index:
                DenseIndex.build(vectors, np.arange(len(vectors), dtype=np.int64), kind=dense_kind).save(tmp / DENSE_FILE)
            counts = previous.lexical() if previous is not None else None
            if previous is not None and counts is None:  # terms changed: carried passages are counted again
                _renew(records, passage_texts, passage_source, previous)
            LexicalIndex.build(passage_texts, reuse=(counts, passage_source) if counts is not None else None).save(tmp)
            start = _warm_start(previous, documents, embedder.dim) if previous is not None else None
            chunk_doc = np.repeat(np.arange(len(documents)), chunk_n)
            DocModel.build(vectors, chunk_vector, chunk_doc, len(documents), start=start).save(tmp)
            RecordSet.write(tmp, "docs", records, previous.docs if previous is not None else None)
            if payloads is not None:
                RecordSet.write(tmp, "payloads", _payload_rows(payloads, source),
                                previous.payloads if previous is not None else None)
            for fname, content in (files or {}).items():  # the caller's own data, swapped with the index
                target_file = tmp / Path(fname).name
                target_file.write_bytes(content) if isinstance(content, bytes) else target_file.write_text(content)
            if calibration is None and previous is not None:
                calibration = Calibration.from_dict(previous.manifest.get("calibration"))
            if fusion is None and previous is not None:
                fusion = Fusion.from_dict(previous.manifest.get("fusion"))
            stored_locales = previous.manifest.get("locales") if previous is not None else None
            if locales is not None:
                stored_locales = {loc: {"fusion": f.to_dict(), "calibration": c.to_dict()} for loc, (f, c) in locales.items()}
            manifest = {
                "format": FORMAT,
                "chunking": CHUNKING,
                "model": embedder.name,
                "dim": embedder.dim,
                "analysis": analysis.VERSION,
                "created": time.time(),
                "dense_kind": dense_kind,
                "dense_index": dense_index,
                "counts": {"documents": len(documents), "passages": len(passage_source),
                           "chunks": len(chunk_vector), "vectors": len(vectors)},
                "docs": hashes,  # in row order
                "calibration": (calibration or Calibration()).to_dict(),
                "fusion": (fusion or Fusion()).to_dict(),
                "locales": stored_locales or {},
                **(extra or {}),
            }
            # The manifest is written last: a build without one is incomplete by definition.
            (tmp / "manifest.json").write_bytes(msgspec.json.encode(manifest))
            _fsync_tree(tmp)
            os.rename(tmp, target)
            self._swap(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune(keep=target)
        return BuildReport(
            path=target,
            documents=len(documents),
            passages=len(passage_source),
            chunks=len(chunk_vector),
            embedded_documents=len(fresh),
            embedded_chunks=len(texts),
            removed_documents=sum(doc_id not in hashes for doc_id in previous.hashes) if previous is not None else 0,
            seconds=time.perf_counter() - started,
        )

    def activate(self, target: Path) -> None:
        """Make a complete build under builds/ the live one (atomically), then prune old builds."""
        self._swap(target)
        self._prune(keep=target)

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


def _sort_out(
    documents: Sequence[Document | str], previous: Stored | None, model: str
) -> tuple[dict[str, str], np.ndarray, list[int]]:
    """Each document's hash, the previous row it is carried from (-1 if none), and the fresh ones."""
    hashes: dict[str, str] = {}
    source = np.full(len(documents), -1, dtype=np.int64)
    fresh: list[int] = []
    for i, doc in enumerate(documents):
        doc_id = doc if isinstance(doc, str) else doc.id
        if doc_id in hashes:
            raise ValueError(f"duplicate document id {doc_id!r}")
        if isinstance(doc, str):
            if previous is None or doc not in previous.row:
                raise StaleBuildError(f"document {doc!r} is to be kept unchanged but is not in the build it is kept from")
            source[i], hashes[doc] = previous.row[doc], previous.hashes[doc]
            continue
        if not doc.passages:  # its title chunk would otherwise belong to the next document
            raise ValueError(f"document {doc.id!r} has no passages")
        hashes[doc.id] = document_hash(doc, model)
        if previous is not None and previous.hashes.get(doc.id) == hashes[doc.id]:
            source[i] = previous.row[doc.id]
        else:
            fresh.append(i)
    return hashes, source, fresh


def _renew(records: list[bytes | int], texts: list[str | None], source: np.ndarray, previous: Stored) -> None:
    """After a change of text analysis: carried documents get their phrases worked out again and
    every carried passage (source >= 0) its text, to be counted again."""
    stored = previous.docs.decoded()
    for i, row in enumerate(records):
        if isinstance(row, int) and not isinstance(row, bool):
            record = dict(stored[row])
            record["phrases"] = record_phrases(record)
            records[i] = msgspec.json.encode(record)
    passages = lexical_texts(stored)
    for i, row in enumerate(source.tolist()):
        if row >= 0:
            texts[i] = passages[row]


def _warm_start(previous: Stored, documents: Sequence[Document | str], dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Classifier weights to start from: every document the previous build had keeps its own.

    The changed ones too: starting them from zero costs lbfgs ~30 passes instead of 2-4.
    """
    stored = previous.classifier()
    if stored is None:
        return None
    weights = np.zeros((len(documents), dim), dtype=np.float32)
    bias = np.zeros(len(documents), dtype=np.float32)
    was = np.array([previous.row.get(doc if isinstance(doc, str) else doc.id, -1) for doc in documents], dtype=np.int64)
    known = np.flatnonzero(was >= 0)
    weights[known], bias[known] = stored[0][was[known]], stored[1][was[known]]
    return weights, bias


def _payload_rows(payloads: Sequence[bytes | None], source: np.ndarray) -> list[bytes | int]:
    if len(payloads) != len(source):
        raise ValueError(f"{len(payloads)} payloads for {len(source)} documents")
    rows: list[bytes | int] = []
    for payload, row in zip(payloads, source.tolist()):
        if payload is None and row < 0:
            raise ValueError("a new or changed document needs its payload")
        rows.append(row if payload is None else payload)
    return rows


def payloads(build: Path, type: type = object) -> list:
    """The payloads stored with a build (decoded as `type` when given), in document order."""
    try:
        return RecordSet(build, "payloads").decoded(type)
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"index build {build} is incomplete: {exc.filename} missing") from exc
    except (ValueError, OSError, msgspec.DecodeError) as exc:
        raise IndexCorruptError(f"index build {build}: its payloads are unreadable: {exc}") from exc


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


__all__ = ["BuildReport", "IndexStore", "Stored", "payloads"]
