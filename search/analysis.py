"""Language-neutral text analysis: the terms of a text, from one Analyzer per language.

The engine asks for "the terms of this text" (`terms`) or "the terms a request may mean"
(`query_terms`), never for a language by name. Each word goes to the analyzer of its script:
- English (Latin letters): Snowball stems;
- Russian (Cyrillic): dictionary lemmas (pymorphy3 with the OpenCorpora dictionaries), so
  `подключается`, `подключиться` and `подключение`'s forms meet at their lemma, not at a stem.

A request's words also carry alternatives the index may know instead (`query_terms`):
- a Latin-letter word that is Russian typed in Latin letters (`zabyl` -> `забыть`);
- a Cyrillic word no Russian dictionary has, as its English sound key (`аутлук` ~ `outlook`),
  matched against the index's Latin terms by search/lexical.py.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Protocol

import snowballstemmer

from search.translit import cyrillic_candidates, sound_key

# Words, plus codes such as 0x800CCC0E or AADSTS50076 that must match exactly.
TOKEN = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
CYRILLIC = re.compile(r"[\u0400-\u04FF]")
LATIN = re.compile(r"[a-z]")
# Bump when terms change: a build with another version has its BM25 terms counted again.
VERSION = "2"  # 1: Snowball stems for both languages; 2: Russian stems of lemmas
SOUND_PREFIX = "~"  # a query alternative "~tlk" means: any Latin index term whose sound key is tlk
# Very common words carry no evidence for BM25; both languages share one list.
STOPWORDS = frozenset(
    """a an and are as at be but by can could do does for from get got has have how i if in
    into is it its me my of on or our so than that the their them then there these this to
    was we what when where which who why will with would you your im ive dont cant
    и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только
    ее мне было вот от меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни
    быть был него до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где
    есть надо ней для мы тебя их чем была сам чтоб без будто чего раз тоже себе под будет ж
    тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем чтобы нее
    сейчас были куда зачем всех никогда можно при наконец два об другой хоть после над больше
    тот через эти нас про всего них какая много разве три эту моя впрочем хорошо свою этой
    перед иногда лучше чуть том нельзя такой им более всегда конечно всю между""".split()
)


class Analyzer(Protocol):
    """Turns the words of one language into index terms."""

    language: str

    def handles(self, word: str) -> bool:
        """Whether a normalised word is written in this analyzer's script."""
        ...

    def term(self, word: str) -> str:
        """The index term of a normalised word."""
        ...

    def known(self, word: str) -> bool:
        """Whether the language's dictionary has the word (False when there is no dictionary)."""
        ...


class SnowballAnalyzer:
    """English: Snowball stems. No dictionary: `known` is always False."""

    language = "en"

    def __init__(self) -> None:
        self._stemmer = snowballstemmer.stemmer("english")

    def handles(self, word: str) -> bool:
        return not CYRILLIC.search(word)

    def term(self, word: str) -> str:
        return str(self._stemmer.stemWord(word))

    def known(self, word: str) -> bool:
        return False


class MorphAnalyzer:
    """Russian: the lemma of the likeliest parse (pymorphy3, which also guesses unknown words),
    cut to its Snowball stem and without a final vowel.

    The lemma joins the forms a stemmer keeps apart (`пошел` and `идти`, `учетной` and `учетная`);
    the stem of the lemma then joins the aspect pairs a dictionary keeps apart (`подключаться`
    and `подключиться` are both `подключ`), which requests mix freely.
    """

    language = "ru"

    def __init__(self) -> None:
        import pymorphy3

        self._morph = pymorphy3.MorphAnalyzer()
        self._stemmer = snowballstemmer.stemmer("russian")

    def handles(self, word: str) -> bool:
        return bool(CYRILLIC.search(word))

    def lemma(self, word: str) -> str:
        """The dictionary form of the likeliest parse."""
        return str(self._morph.parse(word)[0].normal_form).replace("ё", "е")

    def term(self, word: str) -> str:
        stem = str(self._stemmer.stemWord(self.lemma(word)))
        return stem[:-1] if len(stem) > 4 and stem[-1] in "аяеиоуыэю" else stem

    def known(self, word: str) -> bool:
        return bool(self._morph.word_is_known(word))


@lru_cache(maxsize=1)
def analyzers() -> tuple[Analyzer, ...]:
    """Every analyzer, in the order they are asked whether a word is theirs (loaded once)."""
    return (MorphAnalyzer(), SnowballAnalyzer())


def analyzer(language: str) -> Analyzer:
    """The analyzer of a language code."""
    for a in analyzers():
        if a.language == language:
            return a
    raise KeyError(language)


def normalise(text: str) -> str:
    """Fold case and compatibility forms, and treat ё as е."""
    return unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")


def words(text: str) -> list[tuple[str, int, int]]:
    """Return (normalised word, start, end) for each word in text."""
    folded = normalise(text)
    if len(folded) != len(text):  # NFKC changed lengths: offsets would drift
        folded = text.casefold().replace("ё", "е")
    return [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(folded)]


@lru_cache(maxsize=200_000)
def term(word: str) -> str:
    """The index term of one normalised word, from the analyzer of its script."""
    if any(ch.isdigit() for ch in word):
        return word  # error codes and model numbers match exactly
    for a in analyzers():
        if a.handles(word):
            return a.term(word)
    return word


def terms(text: str, keep_stopwords: bool = False) -> list[str]:
    """The index terms of a text (hyphenated words also give their parts)."""
    out: list[str] = []
    for word, _, _ in words(text):
        if not keep_stopwords and word in STOPWORDS:
            continue
        out.append(term(word))
        if "-" in word or "'" in word:
            out.extend(term(part) for part in re.split(r"[-']", word) if part)
    return out


@lru_cache(maxsize=50_000)
def alternatives(word: str) -> tuple[str, ...]:
    """Other terms a request's word may stand for, likeliest first (see the module docstring)."""
    if any(ch.isdigit() for ch in word) or len(word) < 2:
        return ()
    russian = analyzer("ru")
    if CYRILLIC.search(word):
        if russian.known(word):
            return ()
        key = sound_key(russian.term(word)) or sound_key(word)
        return (SOUND_PREFIX + key,) if key else ()
    if not LATIN.search(word):
        return ()
    out: list[str] = []
    for candidate in cyrillic_candidates(word):
        if len(candidate) > 1 and russian.known(candidate):
            lemma = russian.term(candidate)
            if lemma not in out and lemma not in STOPWORDS:
                out.append(lemma)
    return tuple(out)


def query_terms(text: str) -> list[tuple[str, ...]]:
    """A request's terms, one group per word: its own term first, then its alternatives."""
    out: list[tuple[str, ...]] = []
    for word, _, _ in words(text):
        if word in STOPWORDS:
            continue
        out.append((term(word), *alternatives(word)))
        if "-" in word or "'" in word:
            out.extend((term(part),) for part in re.split(r"[-']", word) if part)
    return out


__all__ = ["Analyzer", "MorphAnalyzer", "STOPWORDS", "SOUND_PREFIX", "SnowballAnalyzer", "VERSION", "alternatives", "analyzer",
           "analyzers", "normalise", "query_terms", "term", "terms", "words"]
