"""Between Cyrillic and Latin letters: keyboard layouts, transliteration and a shared sound key.

People type Russian with the wrong layout active (`pf,sk gfhjkm` is `забыл пароль` typed on a
QWERTY layer), in Latin letters (`zabyl parol`), and write English product names the way they
sound (`впн`, `аутлук`, `вайфай`, `тимс`). These are pure tables and functions: which reading
is meant is decided elsewhere (search/language.py, search/analysis.py) against dictionaries.
"""

from __future__ import annotations

import re
from functools import lru_cache

# The same physical keys on the Russian ЙЦУКЕН and the US QWERTY layouts (lower and upper case).
_RU_KEYS = "йцукенгшщзхъфывапролджэячсмитьбюё" + "ЙЦУКЕНГШЩЗХЪФЫВАПРОЛДЖЭЯЧСМИТЬБЮЁ"
_EN_KEYS = "qwertyuiop[]asdfghjkl;'zxcvbnm,.`" + 'QWERTYUIOP{}ASDFGHJKL:"ZXCVBNM<>~'
_TO_RU = str.maketrans(_EN_KEYS, _RU_KEYS)
_TO_EN = str.maketrans(_RU_KEYS, _EN_KEYS)
# Characters that are letters on the other layout: `,` is б and `;` is ж on ЙЦУКЕН.
LAYOUT_PUNCTUATION = frozenset("[];',.`{}:\"<>~")

# Russian-to-Latin as people type it in chats (close to the common "translit" habits).
_CYR_LAT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya",
}
# Latin-to-Russian: longest spelling first, then single letters. Ambiguous letters get the
# commonest reading; `candidates` adds the soft sign people leave out (`parol` -> `пароль`).
_LAT_CYR = [
    ("tsya", "тся"), ("shch", "щ"), ("sch", "щ"), ("zh", "ж"), ("kh", "х"), ("ch", "ч"), ("sh", "ш"), ("ts", "ц"), ("yu", "ю"),
    ("ya", "я"), ("yo", "ё"), ("ju", "ю"), ("ja", "я"), ("jo", "ё"), ("ye", "е"), ("iy", "ий"), ("yj", "ый"),
    ("yy", "ый"), ("ij", "ий"), ("a", "а"), ("b", "б"), ("v", "в"), ("w", "в"), ("g", "г"), ("d", "д"),
    ("e", "е"), ("z", "з"), ("i", "и"), ("j", "й"), ("k", "к"), ("l", "л"), ("m", "м"), ("n", "н"),
    ("o", "о"), ("p", "п"), ("r", "р"), ("s", "с"), ("t", "т"), ("u", "у"), ("f", "ф"), ("h", "х"),
    ("c", "ц"), ("y", "ы"), ("x", "кс"), ("q", "к"), ("'", "ь"),
]
_LAT_CYR_RE = re.compile("|".join(re.escape(k) for k, _ in _LAT_CYR))
_LAT_CYR_MAP = dict(_LAT_CYR)

# An English-pronunciation sound key: spellings that sound alike map to one consonant skeleton.
# One pass, longest spelling first (ck before c, sch before ch before c).
_SOUNDS = [("ph", "f"), ("ck", "k"), ("qu", "kv"), ("dzh", "j"), ("dj", "j"), ("sch", "s"), ("sh", "s"), ("ch", "s"),
           ("zh", "s"), ("kh", "h"), ("ts", "s"), ("th", "t"), ("gh", "g"), ("ce", "se"), ("ci", "si"), ("cy", "sy"),
           ("q", "k"), ("x", "ks"), ("w", "v"), ("c", "k"), ("z", "s")]
_SOUNDS_RE = re.compile("|".join(k for k, _ in _SOUNDS))
_SOUNDS_MAP = dict(_SOUNDS)
_VOWELS = re.compile(r"[aeiouy]+")
_NOT_LETTER = re.compile(r"[^a-z]")
_REPEAT = re.compile(r"(.)\1+")


def swap_layout(text: str) -> str:
    """The text as it would read had the other keyboard layout been active (both directions)."""
    if re.search(r"[\u0400-\u04FF]", text):
        return text.translate(_TO_EN)
    return text.translate(_TO_RU)


def to_latin(word: str) -> str:
    """A Russian word in Latin letters (`вайфай` -> `vayfay`)."""
    return "".join(_CYR_LAT.get(ch, ch) for ch in word.replace("дж", "j"))


def to_cyrillic(word: str) -> str:
    """A word typed in Latin letters read as Russian (`zabyl` -> `забыл`)."""
    return _LAT_CYR_RE.sub(lambda m: _LAT_CYR_MAP[m.group()], word)


def cyrillic_candidates(word: str) -> list[str]:
    """Russian readings of a Latin-letter word: as spelled, and with the soft sign people drop."""
    plain = to_cyrillic(word)
    out = [plain]
    if plain and plain[-1] in "лнтдсзрмпкв":
        out.append(plain + "ь")
    return out


@lru_cache(maxsize=100_000)
def sound_key(word: str) -> str:
    """The consonant skeleton of a word as an English speaker says it: `outlook` and `аутлук` share
    `tlk`, `wifi` and `вайфай` share `vf`, `teams` and `тимс` share `tm`. Empty when too short to
    tell anything apart (fewer than two consonants)."""
    latin = to_latin(word) if re.search(r"[\u0400-\u04FF]", word) else word
    latin = _SOUNDS_RE.sub(lambda m: _SOUNDS_MAP[m.group()], _NOT_LETTER.sub("", latin.lower()))
    skeleton = _REPEAT.sub(r"\1", _VOWELS.sub("", latin))
    if len(skeleton) > 2 and skeleton.endswith("s"):  # plural and possessive s: teams ~ тимс ~ team
        skeleton = skeleton[:-1]
    return skeleton if len(skeleton) >= 2 else ""


__all__ = ["LAYOUT_PUNCTUATION", "cyrillic_candidates", "sound_key", "swap_layout", "to_cyrillic", "to_latin"]
