"""Text to vectors: the embedder protocol and its sentence-transformers implementation.

Backends: `torch`; `onnx` (the same weights exported to ONNX once, locally, and cached: vectors
equal torch's within float rounding); `onnx-int8` (dynamically quantised for this CPU's vector
instructions: faster, but its vectors differ by up to ~0.02 per component, so it has its own
`name` and an index built with it is never served by the float model or the other way round).
"""

from __future__ import annotations

import os
import platform
import queue
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from search.errors import EmbedderError
from search.modelfiles import DEFAULT_CACHE, DEFAULT_MODEL, publish_dir, resolve_model

BACKENDS = ("torch", "onnx", "onnx-int8")
INT8_SUFFIX = "+int8"


class Embedder(Protocol):
    """Encodes queries and documents into L2-normalised float32 vectors."""

    name: str
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray: ...


def submit_queries(embedder: Embedder, texts: Sequence[str]) -> Callable[[], np.ndarray]:
    """Start encoding queries; calling the result waits for the vectors.

    An embedder with its own `submit_queries` (the sentence-transformers one) encodes on its worker
    thread meanwhile, so the caller can do work that needs no vector. Any other embedder encodes
    when the result is called.
    """
    submit = getattr(embedder, "submit_queries", None)
    if submit is not None:
        return submit(texts)
    return lambda: embedder.encode_queries(texts)


def quantisation_target() -> str:
    """The optimum dynamic-quantisation preset for this CPU."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def _cache_key(model: str, source: str) -> str:
    """A directory name for a model's export: readable, and distinct per source path."""
    import hashlib

    digest = hashlib.sha256(os.path.abspath(source).encode()).hexdigest()[:10]
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in model.rsplit("/", 1)[-1])
    return f"{stem}-{digest}"


def export_onnx(source: str, cache_dir: Path, model: str, int8: bool) -> tuple[Path, str]:
    """Export (once) the model to ONNX, optionally int8-quantised; return its dir and file name."""
    fp32 = cache_dir / f"onnx-{_cache_key(model, source)}"

    def export_fp32(tmp: Path) -> None:
        from sentence_transformers import SentenceTransformer

        SentenceTransformer(source, device="cpu", backend="onnx").save_pretrained(str(tmp))

    publish_dir(export_fp32, fp32)
    if not int8:
        return fp32, "onnx/model.onnx"
    target = quantisation_target()
    q_dir = cache_dir / f"onnx-int8-{target}-{_cache_key(model, source)}"

    def export_int8(tmp: Path) -> None:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.backend import export_dynamic_quantized_onnx_model

        shutil.copytree(fp32, tmp)
        loaded = SentenceTransformer(str(fp32), device="cpu", backend="onnx",
                                     model_kwargs={"file_name": "onnx/model.onnx"})
        export_dynamic_quantized_onnx_model(loaded, target, str(tmp), file_suffix="qint8")
        (tmp / "onnx" / "model.onnx").unlink(missing_ok=True)  # only the quantised file is used

    publish_dir(export_int8, q_dir)
    return q_dir, "onnx/model_qint8.onnx"


class OnnxEncoder:
    """A sentence-transformers model with mean pooling, run on tokenizers + onnxruntime alone.

    The same exported graph and tokenizer as sentence-transformers' ONNX backend, so the same
    vectors (tested), without importing torch or transformers: faster cold start, less memory,
    and far less Python per call (tokenise, one session run, pool in numpy).
    """

    def __init__(self, path: Path, file_name: str, options) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        config = _read_json(path / "sentence_bert_config.json")
        max_length = int(config.get("max_seq_length") or _read_json(path / "tokenizer_config.json").get("model_max_length", 512))
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=min(max_length, 512))
        pad = self.tokenizer.padding or {}
        self.tokenizer.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"))
        self.session = ort.InferenceSession(str(path / file_name), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    @staticmethod
    def supports(path: Path) -> bool:
        """Transformer -> mean pooling (-> normalise): the pipeline this class reproduces."""
        modules = _read_json(path / "modules.json") or []
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        pooling = _read_json(path / "1_Pooling" / "config.json")
        mean = pooling.get("pooling_mode") == "mean" or pooling.get("pooling_mode_mean_tokens") is True
        return kinds[:2] == ["Transformer", "Pooling"] and set(kinds[2:]) <= {"Normalize"} and mean \
            and (path / "tokenizer.json").exists()

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts: list[str], batch_size: int = 64, **_: object) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer.encode_batch(texts[start : start + batch_size])
            ids = np.array([e.ids for e in batch], dtype=np.int64)
            mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feeds["token_type_ids"] = np.array([e.type_ids for e in batch], dtype=np.int64)
            tokens = self.session.run(None, feeds)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[start : start + len(batch)] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def _read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class QueryBatcher:
    """Encode queries from many threads in shared batches.

    Under concurrent requests, encoding four short queries in one model call costs about twice
    one, not four times. Each worker thread takes whatever is waiting (up to `max_batch` texts),
    encodes it in one call and hands every caller its rows; a lone request is encoded at once.
    """

    def __init__(self, encode: Callable[[list[str]], np.ndarray], workers: int = 2, max_batch: int = 8) -> None:
        self._encode = encode
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._max_batch = max_batch
        self._workers = workers
        self._started = False
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode texts (one caller's); blocks until their vectors are ready."""
        return self.submit(texts).result()

    def submit(self, texts: list[str]) -> "_Job":
        """Queue texts for encoding and return at once; `result()` waits for their vectors."""
        if not self._started:
            self._start()
        job = _Job(texts)
        self._queue.put(job)
        return job

    def _start(self) -> None:
        with self._lock:
            if not self._started:
                for n in range(self._workers):
                    threading.Thread(target=self._run, name=f"kb-encode-{n}", daemon=True).start()
                self._started = True

    def _run(self) -> None:
        while True:
            jobs = [self._queue.get()]
            size = len(jobs[0].texts)
            while size < self._max_batch:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
                size += len(jobs[-1].texts)
            try:
                vectors = self._encode([t for job in jobs for t in job.texts])
                at = 0
                for job in jobs:
                    job.vectors, at = vectors[at : at + len(job.texts)], at + len(job.texts)
            except BaseException as exc:  # the callers get the error; the worker lives on
                for job in jobs:
                    job.error = exc
            for job in jobs:
                job.done.set()


class _Job:
    __slots__ = ("texts", "vectors", "error", "done")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def result(self) -> np.ndarray:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.vectors  # type: ignore[return-value]


class SentenceTransformerEmbedder:
    """An embedder over sentence-transformers, loaded from disk only (never from a hub)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        backend: str = "torch",
        batch_size: int = 64,
        cache_size: int = 4096,
        threads: int = 0,
        cache_dir: Path | None = None,
        batch_queries: bool = True,
    ) -> None:
        # Offline by construction: a missing model must fail, not download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if backend not in BACKENDS:
            raise EmbedderError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
        try:
            self._model = _load(model, backend, threads, Path(cache_dir or DEFAULT_CACHE))
        except ImportError as exc:  # pragma: no cover - install hint
            raise EmbedderError(f"backend {backend!r} needs: pip install 'sentence-transformers[onnx]' ({exc})") from exc
        except EmbedderError:
            raise
        except Exception as exc:
            raise EmbedderError(f"cannot load embedding model {model!r} ({backend}): {exc}") from exc
        # int8 vectors are a different embedding space as far as an index is concerned.
        self.name = model + (INT8_SUFFIX if backend == "onnx-int8" else "")
        self.backend = backend
        self.threads = threads
        self.dim = int((getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension)() or 0)
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._batcher = QueryBatcher(self._encode, workers=os.cpu_count() or 1) if batch_queries else None
        self.calls = 0  # documents encoded, counted so tests can prove incremental indexing
        self.cache_hits = 0
        self.cache_misses = 0

    def _encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size or self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Encode queries, remembering recent ones (LRU): users retype and backspace."""
        return self.submit_queries(texts)()

    def submit_queries(self, texts: Sequence[str]) -> Callable[[], np.ndarray]:
        """Start encoding queries and return at once: calling the result waits for the vectors.

        The caller can do work that needs no vector (BM25, say) while the encoder runs.
        """
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: list[int] = []
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = hit
            self.cache_hits += len(texts) - len(missing)
            self.cache_misses += len(missing)
        if not missing:
            return lambda: out
        wanted = [texts[i] for i in missing]
        job = self._batcher.submit(wanted) if self._batcher else None

        def result() -> np.ndarray:
            out[missing] = job.result() if job is not None else self._encode(wanted)
            with self._lock:
                for i in missing:
                    self._cache[texts[i]] = out[i].copy()
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return out

        return result

    def clear_cache(self) -> None:
        """Forget cached query vectors (benchmarks measure the uncached path with it)."""
        with self._lock:
            self._cache.clear()

    def encode_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Encode documents shortest first (little padding per batch), reporting progress."""
        self.calls += len(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = self.batch_size * 4  # progress granularity; batches inside are length-homogeneous
        parts = [order[start : start + step] for start in range(0, len(texts), step)]

        def encode(rows: np.ndarray) -> int:
            out[rows] = self._encode([texts[i] for i in rows])
            return len(rows)

        # One thread per encode call serves concurrent queries best; a build uses every core.
        workers = max(1, (os.cpu_count() or 1) // self.threads) if self.threads else 1
        with ThreadPoolExecutor(max_workers=min(workers, len(parts))) as pool:
            for done in pool.map(encode, parts):
                if progress:
                    progress(done)
        return out


def _load(model: str, backend: str, threads: int, cache_dir: Path):
    """Load the model with the backend; ONNX exports are cached, never re-exported."""
    source = resolve_model(model, cache_dir)
    if threads > 0:
        # Per-request numpy work is small matrix-vector products; multi-threaded BLAS spins on
        # them (measured: 11.7 ms -> 0.5 ms for 1.9k x 384 @ q with one thread, under load).
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads, user_api="blas")
    if backend == "torch":
        import torch
        from sentence_transformers import SentenceTransformer

        if threads > 0:
            torch.set_num_threads(threads)
        return SentenceTransformer(source, device="cpu", backend="torch")
    import onnxruntime as ort

    path, file_name = export_onnx(source, cache_dir, model, int8=backend == "onnx-int8")
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if OnnxEncoder.supports(path):
        return OnnxEncoder(path, file_name, options)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        str(path), device="cpu", backend="onnx",
        model_kwargs={"file_name": file_name, "provider": "CPUExecutionProvider", "session_options": options},
    )
