"""Embedder backends: torch and ONNX give the same vectors; the query cache and the export cache work."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from search.embed import (DEFAULT_CACHE, INT8_SUFFIX, QueryBatcher, SentenceTransformerEmbedder, _cache_key,
                          resolve_model, submit_queries)
from search.errors import EmbedderError

TEXTS = [
    "vpn error 809",
    "How do I reset my password?",
    "Your Northwind account locks automatically after five wrong passwords in a row.",
    "не работает принтер на третьем этаже",
    "outlook",
]
# An index built with one float backend is served by the other: they must agree this closely.
FLOAT_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def torch_embedder():
    return SentenceTransformerEmbedder(backend="torch")


@pytest.fixture(scope="module")
def onnx_embedder(embedder):
    return embedder if embedder.backend == "onnx" else SentenceTransformerEmbedder(backend="onnx")


def test_onnx_vectors_equal_torch_within_tolerance(torch_embedder, onnx_embedder):
    a = torch_embedder.encode_documents(TEXTS)
    b = onnx_embedder.encode_documents(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.abs(a - b).max() < FLOAT_TOLERANCE
    assert torch_embedder.name == onnx_embedder.name  # so either can serve the other's index


def test_vectors_are_normalised_float32(onnx_embedder):
    v = onnx_embedder.encode_queries(TEXTS)
    assert v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_length_sorted_document_batches_keep_the_input_order(onnx_embedder):
    together = onnx_embedder.encode_documents(TEXTS)
    one_by_one = np.vstack([onnx_embedder.encode_documents([t]) for t in TEXTS])
    assert np.abs(together - one_by_one).max() < FLOAT_TOLERANCE


def test_query_cache_returns_the_same_vector_without_encoding(onnx_embedder):
    onnx_embedder.clear_cache()
    first = onnx_embedder.encode_queries(["printer offline", "vpn"])
    hits, misses = onnx_embedder.cache_hits, onnx_embedder.cache_misses
    again = onnx_embedder.encode_queries(["vpn", "printer offline", "vpn"])
    assert onnx_embedder.cache_hits - hits == 3 and onnx_embedder.cache_misses == misses
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[1], first[0])
    # the cached vector is the fresh one, not a neighbour's
    assert np.abs(again[0] - onnx_embedder.encode_documents(["vpn"])[0]).max() < FLOAT_TOLERANCE


def test_query_cache_is_a_bounded_lru(onnx_embedder):
    small = SentenceTransformerEmbedder.__new__(SentenceTransformerEmbedder)
    small.__dict__.update(onnx_embedder.__dict__)
    small._cache, small._lock, small._cache_size = type(onnx_embedder._cache)(), threading.Lock(), 2
    small.encode_queries(["a1"])
    small.encode_queries(["b2"])
    small.encode_queries(["a1"])  # a1 is now the most recent
    small.encode_queries(["c3"])  # evicts b2
    assert list(small._cache) == ["a1", "c3"]


def test_query_cache_is_safe_under_concurrent_eviction(onnx_embedder):
    small = SentenceTransformerEmbedder.__new__(SentenceTransformerEmbedder)
    small.__dict__.update(onnx_embedder.__dict__)
    small._cache, small._lock, small._cache_size = type(onnx_embedder._cache)(), threading.Lock(), 3
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(15):
                out = small.encode_queries([f"q{(n + i) % 7}", f"q{i % 5}"])
                assert out.shape == (2, 384) and np.isfinite(out).all()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_onnx_export_is_cached_not_redone(onnx_embedder):
    export = DEFAULT_CACHE / f"onnx-{_cache_key(onnx_embedder.name, resolve_model(onnx_embedder.name))}" / "onnx" / "model.onnx"
    assert export.exists()
    before = export.stat().st_mtime_ns
    SentenceTransformerEmbedder(backend="onnx")
    assert export.stat().st_mtime_ns == before


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(EmbedderError, match="unknown backend"):
        SentenceTransformerEmbedder(backend="tensorflow")


@pytest.mark.slow
def test_int8_has_its_own_name_and_stays_close(onnx_embedder):
    int8 = SentenceTransformerEmbedder(backend="onnx-int8")
    assert int8.name == onnx_embedder.name + INT8_SUFFIX  # an fp32 index is never served with it
    a, b = onnx_embedder.encode_documents(TEXTS), int8.encode_documents(TEXTS)
    cosines = (a * b).sum(axis=1)
    assert cosines.min() > 0.97, cosines


def test_concurrent_queries_share_batches_and_get_their_own_vectors(onnx_embedder):
    calls: list[int] = []
    gate = threading.Event()

    def encode(texts):
        gate.wait(5)  # hold the first call so the others queue up behind it
        calls.append(len(texts))
        return onnx_embedder._encode(texts)

    batcher = QueryBatcher(encode, workers=1, max_batch=8)
    texts = [f"my laptop number {i} will not start" for i in range(12)]
    out: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, batcher.encode([texts[i]])[0])) for i in range(12)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert sum(calls) == 12 and len(calls) < 12  # some requests were encoded together
    alone = onnx_embedder._encode(texts)
    for i in range(12):
        assert np.allclose(out[i], alone[i], atol=1e-5)


def test_a_failed_batch_raises_in_every_caller_and_the_batcher_lives_on():
    fail = [True]

    def encode(texts):
        if fail[0]:
            raise RuntimeError("model crashed")
        return np.ones((len(texts), 3), dtype=np.float32)

    batcher = QueryBatcher(encode, workers=1)
    with pytest.raises(RuntimeError, match="model crashed"):
        batcher.encode(["vpn"])
    fail[0] = False
    assert batcher.encode(["vpn", "printer"]).shape == (2, 3)


def test_submitted_queries_encode_while_the_caller_works(onnx_embedder):
    onnx_embedder.clear_cache()
    pending = onnx_embedder.submit_queries(["printer out of toner", "reset my password"])
    hits = onnx_embedder.cache_hits
    expected = onnx_embedder._encode(["printer out of toner", "reset my password"])  # the caller's own work
    assert np.allclose(pending(), expected, atol=1e-6)
    again = onnx_embedder.submit_queries(["reset my password"])  # cached now: no encoder round trip
    assert onnx_embedder.cache_hits == hits + 1 and np.allclose(again()[0], expected[1], atol=1e-6)


def test_submit_queries_falls_back_to_encoding_when_asked():
    """An embedder without a background path (a test double, say) encodes when the result is called."""

    class Plain:
        name, dim = "plain", 2
        calls: list[list[str]] = []

        def encode_queries(self, texts):
            self.calls.append(list(texts))
            return np.ones((len(texts), 2), dtype=np.float32)

    plain = Plain()
    pending = submit_queries(plain, ["vpn"])
    assert plain.calls == []  # nothing encoded until the vectors are wanted
    assert pending().shape == (1, 2) and plain.calls == [["vpn"]]
