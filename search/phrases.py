"""What a writer wrote counts: a request that is an article's title or alias, or a heading only
one article has, is answered with that article first, in any language.

A writer who sees a gap adds the request as an alias (or a section) and re-indexes; the next
such request must then be answered by that article, not ranked second behind a near neighbour
or left under the threshold. Phrases are compared as their terms (search/analysis.py) with stop
words kept: case, ё/е, punctuation and inflection do not matter, word order and content do.
"""

from __future__ import annotations

from typing import Iterable

from search.analysis import terms


def phrase_key(text: str) -> str:
    """The normalised form a request and a writer's phrase are compared in."""
    return " ".join(terms(text, keep_stopwords=True))


def record_phrases(record: dict) -> dict:
    """The phrase keys of one stored document record: its own (title, aliases) and its headings."""
    own = [phrase_key(t) for t in [record["title"], *record.get("aliases", ())]]
    headings = [phrase_key(p["heading"]) for p in record.get("passages", ()) if p.get("heading")]
    return {"own": sorted({k for k in own if k}), "headings": sorted({k for k in headings if k})}


class PhraseBook:
    """Phrase key -> the one document row it names; a phrase two documents share names neither."""

    def __init__(self, records: Iterable[dict]) -> None:
        own: dict[str, set[int]] = {}
        headings: dict[str, set[int]] = {}
        for row, record in enumerate(records):
            phrases = record.get("phrases") or record_phrases(record)
            for key in phrases["own"]:
                own.setdefault(key, set()).add(row)
            for key in phrases["headings"]:
                headings.setdefault(key, set()).add(row)
        self._rows = {k: next(iter(v)) for k, v in headings.items() if len(v) == 1}
        for key, rows in own.items():  # a title or alias beats another article's heading
            if len(rows) == 1:
                self._rows[key] = next(iter(rows))
            else:
                self._rows.pop(key, None)

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, query: str) -> int | None:
        """The document row the request names, if it is one of the phrases."""
        key = phrase_key(query)
        return self._rows.get(key) if key else None


__all__ = ["PhraseBook", "phrase_key", "record_phrases"]
