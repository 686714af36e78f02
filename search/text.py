"""Chunking and highlighting; words and terms come from search/analysis.py."""

from __future__ import annotations

import re

from search.analysis import CYRILLIC, SOUND_PREFIX, STOPWORDS, normalise, query_terms, term, terms, words
from search.translit import sound_key


def highlight(text: str, query: str) -> list[tuple[int, int]]:
    """Return the character spans of text whose terms occur in the query (or its alternatives)."""
    wanted = {t for group in query_terms(query) for t in group}
    if not wanted:
        return []
    sounds = any(t.startswith(SOUND_PREFIX) for t in wanted)  # `аутлук` highlights `Outlook`
    spans = []
    for word, start, end in words(text):
        if word in STOPWORDS:
            continue
        if term(word) in wanted or (sounds and not CYRILLIC.search(word) and SOUND_PREFIX + sound_key(word) in wanted):
            spans.append((start, end))
    return spans


_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")


def chunks(text: str, min_words: int = 4, max_words: int = 80) -> list[str]:
    """Split passage text into paragraph and list-item chunks for embedding.

    Short neighbours are merged so a chunk carries enough context; long paragraphs are cut.
    """
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        lines = [ln for ln in para.splitlines() if ln.strip()]
        if not lines:
            continue
        if any(_LIST_ITEM.match(ln) for ln in lines):
            current: list[str] = []
            for ln in lines:
                if _LIST_ITEM.match(ln) and current:
                    pieces.append(" ".join(current))
                    current = []
                current.append(_LIST_ITEM.sub("", ln).strip())
            if current:
                pieces.append(" ".join(current))
        else:
            pieces.append(" ".join(ln.strip() for ln in lines))
    out: list[str] = []
    for piece in pieces:
        tokens = piece.split()
        while len(tokens) > max_words:
            out.append(" ".join(tokens[:max_words]))
            tokens = tokens[max_words - 10 :]  # overlap keeps a sentence cut in two findable
        if tokens:
            if out and len(out[-1].split()) < min_words:
                out[-1] = out[-1] + " " + " ".join(tokens)
            else:
                out.append(" ".join(tokens))
    return out


__all__ = ["chunks", "highlight", "normalise", "terms", "words"]
