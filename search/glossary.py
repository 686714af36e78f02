"""Crossing languages without a multilingual model: a request glossed word by word through a
bilingual dictionary, into the words the KB's other language uses.

The dictionary is an English->Russian one in dictd format (Debian's `mueller7-dict`, Mueller's
46,000-headword dictionary; any dictd file of the same shape works). Each headword's translations
are read in the dictionary's order (first senses first; example phrases, labels and notes
dropped). Read backwards it gives, for a Russian term (search/analysis.py's, so inflection does
not matter), the English headwords that translate it. Only Russian requests are glossed: English
ones glossed into Russian (4 translations per headword, no ranking) answered off-topic requests
with Russian articles on the bundled KB (docs/answer-quality.md).

A request is glossed only into words the index knows (`known`): a dictionary offers `canticle`,
`chant` and `song` for `песня`, and the KB's vocabulary says which of them its articles use. The
gloss is then searched as a request in the articles' language (BM25 and the sentence model).
Parsing the dictionary takes ~15 s, so the parsed form is cached by the dictionary's SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from search.analysis import CYRILLIC, STOPWORDS, VERSION, term, words

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
HEADWORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
RUSSIAN_WORD = re.compile(r"[а-яё]+(?:-[а-яё]+)?")
LATIN = re.compile(r"[A-Za-z]")
PER_WORD = 2  # translations kept per request word (hwu_ru/xling_en dev R@1: 1 0.52, 2 0.52, 3 0.50)
# How much a translation's place in its entry weighs against the entry's length (log characters).
# On hwu_ru/xling_en dev (5-fold R@1 of kb's fusion): 0 0.38, 0.7 0.45, 2 0.51, 3.5 0.52, 6 0.52.
RANK_WEIGHT = 6.0
CACHE_FORMAT = "3"


def _b64(text: str) -> int:
    """A dictd index number (base 64, most significant digit first)."""
    n = 0
    for ch in text:
        n = n * 64 + B64.index(ch)
    return n


def dictd_entries(index: Path, data: Path) -> Iterator[tuple[str, str]]:
    """(headword, entry text) of a dictd dictionary: its .index file and its .dict or .dict.dz data."""
    raw = gzip.open(data).read() if data.suffix == ".dz" else data.read_bytes()
    with open(index, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00database"):
                continue
            start, length = _b64(parts[1]), _b64(parts[2])
            yield parts[0], raw[start : start + length].decode("utf-8", "replace")


def translations(entry: str) -> list[str]:
    """The single-word Russian translations of one entry, first senses first.

    Dropped: the headword line, transcriptions [..], notes (..), labels (_n., _воен.), and every
    segment with a Latin letter (an example phrase and its translation).
    """
    body = entry.split("\n", 1)[1] if "\n" in entry else ""
    body = re.sub(r"\[[^\]]*\]|\([^)]*\)|_[^\s.]+\.", " ", body)
    body = re.sub(r"\b\d+[.)]|\b[а-д]\)", ";", body)  # sense numbers split segments
    out = []
    for segment in re.split(r"[;,:!?\n]", body):
        word = segment.strip().strip(".").strip().lower()
        if word and not LATIN.search(word) and RUSSIAN_WORD.fullmatch(word):
            out.append(word.replace("ё", "е"))
    return out


def parse(index: Path, data: Path) -> dict[str, dict[str, list[str]]]:
    """An English->Russian dictionary read backwards: {"ru": {Russian term: [English words]}}.

    A Russian term's English words are ordered by how early the term comes in each headword's
    entry (`будильник` is alarm-clock's first word but alarm's fifth), and nearly equal places by
    the entry's length (common words have long entries: `song` before `canto`).
    """
    ranked: dict[str, dict[str, float]] = {}
    for head, entry in dictd_entries(index, data):
        headword = head.strip().lower()
        if not HEADWORD.fullmatch(headword):
            continue
        russian = translations(entry)
        if not russian:
            continue
        size = math.log(len(entry))
        for rank, word in enumerate(dict.fromkeys(russian)):
            score = size - RANK_WEIGHT * math.log(1 + rank)
            slot = ranked.setdefault(term(word), {})
            slot[headword] = max(slot.get(headword, -math.inf), score)
    return {"ru": {t: sorted(c, key=lambda h: -c[h])[:12] for t, c in ranked.items()}}


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Glossary:
    """Word-by-word translations between two languages, keyed by index term."""

    entries: dict[str, dict[str, list[str]]]  # source language -> term -> words of the other language
    source: str = ""  # where it came from (file and digest), for the record

    @classmethod
    def load(cls, index: Path, cache_dir: Path) -> "Glossary":
        """Read a dictd English->Russian dictionary (`index` names its .index file; the data file is
        beside it), parsing it once into `cache_dir`."""
        index = Path(index)
        data = next((p for p in (index.with_suffix(".dict.dz"), index.with_suffix(".dict")) if p.exists()), None)
        if data is None:
            raise FileNotFoundError(f"{index}: no .dict.dz or .dict data file beside it")
        digest = _digest(index, data)
        cached = Path(cache_dir) / f"glossary-{CACHE_FORMAT}-{VERSION}-{digest[:24]}.json"
        if cached.exists():
            entries = json.loads(cached.read_text(encoding="utf-8"))
        else:
            entries = parse(index, data)
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
            tmp.replace(cached)
        return cls(entries, f"{index.name} sha256:{digest}")

    def gloss(self, text: str, known: Callable[[str], bool], sounds: Callable[[str], list[str]] | None = None,
              per_word: int = PER_WORD) -> str:
        """The text's words in the other language, as far as the index `known` has their terms
        ('' when no word of it is in a language the glossary translates).

        A Cyrillic word goes to English. A word whose translations the index does not know gets
        the first one (the sentence model may still read it). A Cyrillic word with none becomes
        the Latin term that `sounds` like it (`подкаст` -> `podcast`: names and loanwords); any
        other word is kept as it is (a product name, a code).
        """
        out: list[str] = []
        side = self.entries.get("ru", {})
        if not CYRILLIC.search(text):
            return ""
        for word, _, _ in words(text):
            if word in STOPWORDS:
                continue
            own = term(word)
            offered = side.get(own, []) if CYRILLIC.search(word) else []
            found = [w for w in offered if all(known(term(p)) for p in w.split("-"))][:per_word] or offered[:1]
            if not found and sounds is not None and CYRILLIC.search(word):
                found = sounds(word)
            if found:
                out.extend(w.replace("-", " ") for w in found)
            else:
                out.append(word)
        return " ".join(out)


__all__ = ["Glossary", "dictd_entries", "parse", "translations"]
