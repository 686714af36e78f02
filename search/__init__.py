"""Retrieval engine for kb: dense (faiss) and lexical (BM25) search fused into one ranking.

It speaks in ids, text and scores. It knows nothing about articles, HTTP or SQLite.
"""

from search.errors import SearchError, IndexMissingError, IndexCorruptError
from search.model import Document, Passage, Hit, Results
from search.fusion import Calibration

__all__ = [
    "Calibration",
    "Document",
    "Hit",
    "IndexCorruptError",
    "IndexMissingError",
    "Passage",
    "Results",
    "SearchError",
]
