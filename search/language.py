"""Which language a text is in, from the text alone: one detector for search, the request log and gaps.

- Cyrillic letters are Russian (`впн не работает`, `outlook не открывается`).
- Latin letters are English, unless they read as Russian in a dictionary:
  - typed with the Latin layout active (`pf,sk gfhjkm` is `забыл пароль` on the same keys):
    the detection then carries the text as meant, so search reads the Russian;
  - Russian written in Latin letters (`zabyl parol`, `ne rabotaet vpn`): the text as meant is
    then in Cyrillic where the dictionary knows the words (`забыл пароль`, `не работает vpn`).
- Digits and codes alone say nothing (`0x800CCC0E`): the language is "" with confidence 0; one
  Latin word alone (`vpn`) leans to English without deciding.

The caller breaks ties with what it knows besides the text (the UI locale): `pick`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from search.analysis import CYRILLIC, STOPWORDS, analyzer, normalise
from search.translit import LAYOUT_PUNCTUATION, cyrillic_candidates, swap_layout, to_cyrillic

# Below this confidence the text does not decide: the caller's own locale does.
DECISIVE = 0.6
# Spellings English rarely has and Russian transliteration often does.
_TRANSLIT_MARKS = re.compile(r"(zh|kh|shch|sch|ya|yu|yo|iy\b|yj\b|[bcdfghklmnprstvz]y[bcdfghklmnprstvz])")
# Russian function words as they are written in Latin letters: English has none of them.
_TRANSLIT_WORDS = frozenset("ne ya kak mne menya nas gde pochemu chto nado nuzhno eto ili moy moya".split())
_LATIN_LETTER = re.compile(r"[a-z]")
_ENGLISH_STOPWORDS = frozenset(w for w in STOPWORDS if not CYRILLIC.search(w))


@dataclass(frozen=True)
class Detection:
    """A text's language, how sure the detector is (0..1), how it knew, and the text as meant."""

    language: str  # "en", "ru", or "" when the text gives no evidence
    confidence: float
    text: str  # with the keyboard layout fixed when it was typed on the wrong one
    how: str  # "script", "layout", "translit", or "none"


@lru_cache(maxsize=100_000)
def _known(word: str) -> bool:
    """Whether the Russian dictionary has the word (cached: a dictionary look-up is ~20 µs)."""
    return analyzer("ru").known(word)


def _known_share(words: list[str]) -> float:
    """The share of letters (by word length) in words the Russian dictionary knows."""
    total = sum(len(w) for w in words)
    known = sum(len(w) for w in words if len(w) > 1 and _known(w))
    return known / total if total else 0.0


def _layout_share(chunks: list[str]) -> float:
    """How much of a Latin text reads as Russian when its keys are read on the ЙЦУКЕН layout."""
    words = [w for c in chunks for w in re.findall(r"[а-яё]+", swap_layout(c).lower())]
    return _known_share(words)


def _translit_share(words: list[str]) -> float:
    """How much of a Latin text reads as Russian written in Latin letters."""
    total = sum(len(w) for w in words)
    known = sum(len(w) for w in words if len(w) > 2 and any(_known(c) for c in cyrillic_candidates(w)))
    return known / total if total else 0.0


def _in_cyrillic(text: str) -> str:
    """Russian typed in Latin letters, in Cyrillic: each word the dictionary knows in some reading
    (`zabyl parol` -> `забыл пароль`); others, such as product names, stay as typed."""

    def read(m: re.Match[str]) -> str:
        word = m.group()
        if len(word) == 1:  # в, у, к, с, и, а, о
            return to_cyrillic(word) if word.lower() in "vuksiao" else word
        known = [c for c in cyrillic_candidates(word.lower()) if _known(c)]
        return known[0] if known else word

    return re.sub(r"[A-Za-z']+", read, text)


def detect(text: str) -> Detection:
    """The language of a text (see the module docstring)."""
    folded = normalise(text)
    cyrillic = len(CYRILLIC.findall(folded))
    latin = len(_LATIN_LETTER.findall(folded))
    if cyrillic + latin == 0:
        return Detection("", 0.0, text, "none")
    if cyrillic >= latin:
        return Detection("ru", min(1.0, 0.5 + cyrillic / (cyrillic + latin) / 2), text, "script")
    chunks = [c for c in text.split() if not any(ch.isdigit() for ch in c)]
    if not chunks:
        return Detection("", 0.0, text, "none")
    letters = [c for c in chunks if _LATIN_LETTER.search(c.lower()) or set(c) & LAYOUT_PUNCTUATION]
    words = [w for c in letters for w in re.findall(r"[a-z]+", c.lower())]
    if any(w in _ENGLISH_STOPWORDS for w in words):  # "the", "my", "is": English, whatever else it could read as
        return Detection("en", 1.0, text, "script")
    layout = _layout_share(letters)
    if layout >= 0.6:
        return Detection("ru", min(1.0, 0.4 + layout * 0.6), swap_layout(text), "layout")
    translit = _translit_share(words)
    # Russian spellings and function words make the reading sure; loanwords alone (`internet
    # problem`) read as Russian or English alike, and a product name (`globalprotect`) as neither.
    marked = any(w in _TRANSLIT_WORDS or _TRANSLIT_MARKS.search(w) for w in words)
    if marked and translit >= 0.4:
        return Detection("ru", min(1.0, 0.6 + 0.4 * translit), _in_cyrillic(text), "translit")
    if translit >= 0.6:
        return Detection("ru", 0.55, text, "translit")
    if len(words) <= 1:  # one Latin word (`vpn`, `outlook`) is a name more often than English
        return Detection("en", 0.55, text, "script")
    return Detection("en", 1.0 - max(layout, translit) / 2, text, "script")


def pick(detection: Detection, fallback: str) -> str:
    """The detected language when the text decides it, else the fallback (the UI locale)."""
    return detection.language if detection.language and detection.confidence >= DECISIVE else fallback


__all__ = ["DECISIVE", "Detection", "detect", "pick"]
