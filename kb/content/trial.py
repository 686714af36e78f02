"""A trial build: the live index with one article added or replaced, for a replay before publishing.

It is built in a temporary index root beside the live one, from the live build (every other
article is carried over as stored, nothing re-embedded but the edited article's new texts), and
removed when the caller is done. The live index, and what the portal serves, never change.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from search.embed import Embedder
from search.index import Index
from search.store import IndexStore

from kb.content.articles import Article
from kb.content.indexer import to_document


@contextmanager
def trial_index(live: Index, article: Article, embedder: Embedder, replaces: tuple[str, ...] = ()) -> Iterator[Index]:
    """The live index plus `article` (in place of itself and of the slugs in `replaces`), searchable
    while the block runs; the temporary build is deleted afterwards."""
    dropped = {article.slug, *replaces}
    documents = [doc_id for doc_id in live.doc_ids() if doc_id not in dropped]
    parent = Path(live.path).parents[2]  # beside the live index root, on the same file system
    root = Path(tempfile.mkdtemp(prefix=".trial-", dir=parent))
    try:
        IndexStore(root).build([*documents, to_document(article)], embedder, base=Path(live.path))
        yield IndexStore(root).load(embedder)
    finally:
        shutil.rmtree(root, ignore_errors=True)
