"""Above EXACT_MAX_DOCS documents a query scores only its neighbourhood: it must rank like exact scoring."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

import search.index
from search.model import Document, Passage
from search.store import IndexStore

WORDS = [f"w{i}" for i in range(400)]


class HashingEmbedder:
    """Deterministic bag-of-words vectors, so a 2,500-document index builds in seconds.

    Words starting with "x" are not embedded at all: only BM25 can find them.
    """

    name = "hashing-test-embedder"
    dim = 64

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim)
        for word in re.findall(r"\w+", text.lower()):
            if not word.startswith("x"):
                v += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(self.dim)
        return v / max(np.linalg.norm(v), 1e-9)

    def encode_queries(self, texts):
        return np.array([self._vector(t) for t in texts], dtype=np.float32)

    def encode_documents(self, texts, progress=None):
        return self.encode_queries(texts).reshape(len(texts), self.dim)


@pytest.fixture(scope="module")
def large_index(tmp_path_factory):
    rng = np.random.default_rng(3)
    docs = []
    for i in range(2500):
        words = rng.choice(WORDS, size=6, replace=False)
        text = f"{' '.join(words[2:])}. Ask about x{i}code if it fails."
        docs.append(Document(id=f"doc-{i}", title=f"{words[0]} {words[1]}",
                             passages=(Passage(id=f"doc-{i}#steps", heading="Steps", text=text),)))
    root = tmp_path_factory.mktemp("large")
    embedder = HashingEmbedder()
    IndexStore(root).build(docs, embedder)
    return IndexStore(root).load(embedder), docs


def test_the_neighbourhood_ranks_like_scoring_every_document(large_index, monkeypatch):
    index, docs = large_index
    assert len(index) > search.index.EXACT_MAX_DOCS
    queries = [docs[7].title, docs[1234].passages[0].text, "w5 w17 w300", "x2048code", "w1 x99code", "nothing here"]
    for query in queries:
        near = index.search(query, k=3)
        monkeypatch.setattr(search.index, "EXACT_MAX_DOCS", 10_000)
        exact = index.search(query, k=3)
        monkeypatch.undo()
        assert [h.doc_id for h in near.hits] == [h.doc_id for h in exact.hits], query
        assert [h.score for h in near.hits] == pytest.approx([h.score for h in exact.hits], abs=1e-6), query


def test_a_term_only_bm25_knows_is_found_through_the_lexical_neighbourhood(large_index):
    index, _ = large_index
    hits = index.search("x2048code", k=3).hits
    assert hits[0].doc_id == "doc-2048" and hits[0].dense == pytest.approx(0.0, abs=1e-6) and hits[0].lexical > 0


def test_inner_products_match_numpy():
    from search.dense import inner_products

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((1000, 64)).astype(np.float32)
    query = rng.standard_normal(64).astype(np.float32)
    assert np.allclose(inner_products(vectors, query), vectors @ query, atol=1e-5)
    assert np.allclose(inner_products(vectors[::2], query.astype(np.float64)), vectors[::2] @ query, atol=1e-5)
    assert inner_products(np.zeros((0, 64), np.float32), query).shape == (0,)
    with pytest.raises(ValueError):
        inner_products(vectors, query[:10])
