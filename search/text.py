"""Tokenising, stemming, chunking and highlighting for English and Russian text."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import snowballstemmer

# Words, plus codes such as 0x800CCC0E or AADSTS50076 that must match exactly.
_TOKEN = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_STEMMERS = {
    "en": snowballstemmer.stemmer("english"),
    "ru": snowballstemmer.stemmer("russian"),
}
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


def normalise(text: str) -> str:
    """Fold case and compatibility forms, and treat ё as е."""
    return unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Stem one lower-case word with the stemmer for its script."""
    if any(ch.isdigit() for ch in word):
        return word  # error codes and model numbers match exactly
    lang = "ru" if _CYRILLIC.search(word) else "en"
    return _STEMMERS[lang].stemWord(word)


def words(text: str) -> list[tuple[str, int, int]]:
    """Return (normalised word, start, end) for each word in text."""
    folded = normalise(text)
    if len(folded) != len(text):  # NFKC changed lengths: offsets would drift
        folded = text.casefold().replace("ё", "е")
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(folded)]


def terms(text: str, keep_stopwords: bool = False) -> list[str]:
    """Return the stemmed index terms of text."""
    out: list[str] = []
    for word, _, _ in words(text):
        if not keep_stopwords and word in STOPWORDS:
            continue
        out.append(stem(word))
        if "-" in word or "'" in word:
            out.extend(stem(part) for part in re.split(r"[-']", word) if part)
    return out


def highlight(text: str, query: str) -> list[tuple[int, int]]:
    """Return the character spans of text whose stems occur in the query."""
    wanted = set(terms(query))
    if not wanted:
        return []
    spans = []
    for word, start, end in words(text):
        if word not in STOPWORDS and stem(word) in wanted:
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
