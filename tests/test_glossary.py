"""Answers across languages through a bilingual dictionary (issue 16, item 5): reading a dictd
dictionary, glossing a request into the words the KB uses, and the desk's cross-language step."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from search.analysis import term
from search.glossary import B64, Glossary, dictd_entries, parse, translations
from search.lexical import LexicalIndex

from kb.content.indexer import make_glossary
from kb.serving.desk import Desk
from kb.settings import Settings

HERE = Path(__file__).resolve().parent
ARTICLES = HERE.parent / "articles"

# Entries shaped as Debian's mueller7 has them: transcription, labels, numbered senses, examples.
ENTRIES = {
    "alarm": "alarm\n   [ɜ↗lɑ:m]\n   1. _n.\n      1) тревога, сигнал тревоги; false alarm ложная тревога\n"
             "      2) будильник\n   2. _v. поднимать тревогу\n",
    "alarm-clock": "alarm-clock\n   [ɜ↗lɑ:mklɘk] _n. будильник\n",
    "canto": "canto\n   [↗kæntɜʊ] _n. песнь\n",
    "chant": "chant\n   [tʃɑ:nt] _n. песня, песнь\n",
    "song": "song\n   [sɘŋ] _n.\n   1) песня; романс; to burst into song запеть\n   2) пение\n"
            "   3) стихи, поэзия\n",
    "password": "password\n   [↗pɑ:swɜ:d] _n. пароль; пропуск\n",
}


def _b64(n: int) -> str:
    out = ""
    while True:
        out = B64[n % 64] + out
        n //= 64
        if not n:
            return out


def write_dictd(folder: Path, entries: dict[str, str] = ENTRIES) -> Path:
    """A dictd dictionary (.index and gzipped .dict.dz) with the given headwords and entries."""
    data, lines = b"00-database-info\nA test dictionary.\n", []
    lines.append(f"00databaseinfo\t{_b64(0)}\t{_b64(len(data))}")
    for head, text in entries.items():
        raw = text.encode("utf-8")
        lines.append(f"{head}\t{_b64(len(data))}\t{_b64(len(raw))}")
        data += raw
    (folder / "test.dict.dz").write_bytes(gzip.compress(data))
    (folder / "test.index").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "test.index"


def test_dictd_entries_and_translations(tmp_path):
    index = write_dictd(tmp_path)
    entries = dict(dictd_entries(index, index.with_suffix(".dict.dz")))
    assert set(entries) == set(ENTRIES)  # the 00database header is not a headword
    # first senses first; the example phrase (Latin letters) and the labels are dropped
    assert translations(entries["alarm"]) == ["тревога", "будильник"]
    assert translations(entries["song"]) == ["песня", "романс", "пение", "стихи", "поэзия"]


def test_parse_reads_the_dictionary_backwards(tmp_path):
    index = write_dictd(tmp_path)
    both = parse(index, index.with_suffix(".dict.dz"))
    assert set(both["ru"][term("будильник")]) == {"alarm", "alarm-clock"}
    assert "alarm" in both["ru"][term("будильника")]  # any form of the word: keyed by index term
    assert both["ru"][term("песню")][0] == "song"  # a long entry (a common word) before chant's
    assert set(both) == {"ru"}  # English requests are not glossed (docs/answer-quality.md says why)


def test_gloss_uses_the_words_the_kb_knows(tmp_path):
    glossary = Glossary.load(write_dictd(tmp_path), tmp_path / "cache")
    english = LexicalIndex.build(["Set an alarm", "Play a song", "Reset your password", "Teams podcast"])
    gloss = glossary.gloss("Поставь будильник", english.knows, english.sounding)
    assert gloss.split() == ["поставь", "alarm"]  # `alarm clock` is offered too, but the KB says alarm
    assert glossary.gloss("спой песню", english.knows) == "спой song"
    # a word no dictionary has becomes the KB's Latin term that sounds like it
    assert glossary.gloss("подкаст", english.knows, english.sounding) == "podcast"
    russian = LexicalIndex.build(["Сброс пароля"])
    assert glossary.gloss("forgot password", russian.knows) == ""  # English requests stay as they are
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and Glossary.load(tmp_path / "test.index", tmp_path / "cache").entries == glossary.entries


def test_a_missing_dictionary_is_a_warning_not_a_crash(tmp_path, caplog):
    settings = Settings.load(environ={}, config=tmp_path / "none.toml", glossary=str(tmp_path / "absent.index"))
    assert make_glossary(settings) is None
    assert "absent.index" in caplog.text and "mueller7-dict" in caplog.text
    assert make_glossary(settings.replace(glossary="")) is None


@pytest.fixture(scope="module")
def desk(indexed_dir, embedder) -> Desk:
    settings = Settings.load(environ={}, config=indexed_dir / "no-kb.toml", articles=ARTICLES, data=indexed_dir)
    desk = Desk(settings, embedder, db=None)
    desk.load()
    assert desk.glossary is not None, "Debian's mueller7-dict is needed (apt-get install mueller7-dict)"
    return desk


@pytest.mark.parametrize("request_, slug", [
    ("потерял корпоративную карту", "lost-expense-card"),  # only an English article covers it
])
def test_a_request_only_another_language_answers_gets_that_article(desk, request_, slug):
    answer = desk.suggest(request_, locale="ru", record=False)
    assert answer.locale == "ru" and answer.answered and answer.fallback
    assert answer.items[0].slug == slug and answer.items[0].locale == "en"
    replay = desk.replay(request_, locale="ru")
    assert replay.answered and replay.hits[0].doc_id == slug


@pytest.mark.parametrize("request_, locale", [("рецепт борща", "ru"), ("погода в москве", "ru"),
                                              ("what is the meaning of life", "ru"), ("write me a poem about spring", "en"),
                                              ("how do I get a refund from the vending machine", "en")])
def test_crossing_languages_does_not_answer_what_nothing_covers(desk, request_, locale):
    assert not desk.suggest(request_, locale=locale, record=False).answered


def test_without_a_glossary_the_desk_stays_in_the_words_it_shares(desk, embedder):
    plain = Desk(desk.settings.replace(glossary=""), embedder, db=None)
    plain.load()
    assert plain.glossary is None and plain.library.index.gloss("потерял карту") == ""
    assert not plain.suggest("потерял корпоративную карту", locale="ru", record=False).answered


def test_a_crossing_takes_its_own_fit_or_the_target_languages(desk):
    index = desk.library.index
    assert "ru>en" not in index.locales  # none is shipped (docs/answer-quality.md says why)
    default = (index.fusion, index.calibration)
    assert index.tuning("ru>en") == index.tuning("en>ru") == default != index.tuning("ru")
    assert default[1].threshold > index.tuning("ru")[1].threshold  # the stricter one
    fitted = (index.fusion, index.calibration.__class__(threshold=0.99))
    index.locales["ru>en"] = fitted  # as `kb calibrate` on a desk's own cross-language requests makes it
    try:
        assert index.tuning("ru>en") == fitted
    finally:
        del index.locales["ru>en"]
