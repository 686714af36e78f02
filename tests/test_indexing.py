"""Incremental indexing, atomic swap, and clear errors for damaged or mismatched indexes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from kb.content.articles import load_dir
from kb.serving.desk import Desk
from kb.errors import IndexUnavailableError
from kb.content.indexer import index_directory, load_articles, to_document
from kb.settings import Settings
from search.errors import IndexCorruptError, IndexMissingError
from search.index import embedding_units
from search.store import IndexStore
from search.lexical import LexicalIndex

TOPICS = {
    "printer-jam": ("Clear a paper jam", "Open tray 2 and pull the crumpled paper out gently.", "paper jam"),
    "vpn-drops": ("VPN keeps disconnecting", "Restart your home router and switch the GlobalProtect gateway.", "vpn drops"),
    "parking-space": ("Book a parking space", "Use the Parkable app to reserve a car park bay for the day.", "parking"),
    "payslip": ("Download your payslip", "Open Workday, choose Pay and download the PDF of your payslip.", "payslip"),
}


def article(slug: str, title: str, text: str, alias: str, extra: str = "") -> str:
    return (
        f"---\ntitle: {title}\nslug: {slug}\ncategory: test\ntags: [t]\nlocale: en\nstatus: published\n"
        f"updated: 2026-01-01\naliases:\n  - {alias}\n---\nIntro for {title}.\n\n## Steps\n\n{text}{extra}\n\n"
        f"## Who to contact\n\nCall the service desk.\n"
    )


class CountingEmbedder:
    """The real embedder, recording every text it is asked to embed as a document."""

    def __init__(self, inner, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or inner.name
        self.dim = inner.dim
        self.texts: list[str] = []

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts, progress=None):
        self.texts.extend(texts)
        return self.inner.encode_documents(texts, progress=progress)

    def take(self) -> list[str]:
        out, self.texts = self.texts, []
        return out


@pytest.fixture
def kb_dirs(tmp_path):
    articles = tmp_path / "articles"
    articles.mkdir()
    for slug, (title, text, alias) in TOPICS.items():
        (articles / f"{slug}.md").write_text(article(slug, title, text, alias))
    return articles, tmp_path / "data"


@pytest.fixture
def counting(embedder):
    return CountingEmbedder(embedder)


def settings_for(articles: Path, data: Path) -> Settings:
    return Settings.load(environ={}, config=articles / "no-kb.toml", articles=articles, data=data)


def units_of(articles: Path, slug: str) -> list[str]:
    a = next(a for a in load_dir(articles).articles if a.slug == slug)
    return [u[2] for u in embedding_units(to_document(a))]


def served(data: Path, embedder) -> Desk:
    desk = Desk(settings_for(data, data), embedder, db=None)
    desk.load()
    return desk


def test_first_build_embeds_everything_then_nothing(kb_dirs, counting):
    articles, data = kb_dirs
    s = settings_for(articles, data)
    first = index_directory(s, counting)
    every = [t for slug in TOPICS for t in units_of(articles, slug)]
    shared = "Who to contact: Call the service desk."
    assert every.count(shared) == len(TOPICS)  # the same section in every article...
    assert sorted(counting.take()) == sorted(set(every))  # ...is embedded once, like every text
    assert (first.articles, first.embedded_articles, first.removed_articles) == (4, 4, 0)

    again = index_directory(s, counting)
    assert counting.take() == []
    assert (again.articles, again.embedded_articles, again.removed_articles) == (4, 0, 0)
    assert again.passages == first.passages
    index = IndexStore(s.index_path).load(counting)
    rows = [i for i, text in enumerate(index.chunk_text) if text == "Call the service desk."]
    assert len(rows) == len(TOPICS) and len({int(index.chunk_vector[r]) for r in rows}) == 1  # stored once
    assert len(index.vectors) == len(set(every)) < len(index.chunk_text)


def test_changed_article_is_the_only_one_embedded(kb_dirs, counting, embedder):
    articles, data = kb_dirs
    s = settings_for(articles, data)
    index_directory(s, counting)
    counting.take()
    title, text, alias = TOPICS["parking-space"]
    (articles / "parking-space.md").write_text(article("parking-space", title, text, alias, " EV chargers are on level -2."))
    summary = index_directory(s, counting)
    # only the text that changed: its title, alias and other sections keep their vectors
    assert counting.take() == ["Steps: " + text + " EV chargers are on level -2."]
    assert summary.embedded_articles == 1
    desk = served(data, embedder)
    assert "EV chargers" in desk.article("parking-space").body
    # unchanged articles kept their vectors: they are still found
    assert desk.suggest("paper jam in tray 2", record=False).items[0].slug == "printer-jam"


def test_removed_article_is_dropped_from_index_and_results(kb_dirs, counting, embedder):
    articles, data = kb_dirs
    s = settings_for(articles, data)
    index_directory(s, counting)
    assert served(data, embedder).suggest("download my payslip pdf", record=False).items[0].slug == "payslip"
    counting.take()
    (articles / "payslip.md").unlink()
    summary = index_directory(s, counting)
    assert counting.take() == []
    assert (summary.articles, summary.removed_articles) == (3, 1)
    desk = served(data, embedder)
    assert "payslip" not in desk.library.index.doc_ids()
    assert "payslip" not in {a.slug for a in load_articles(desk.library.index.path)}
    found = desk.suggest("download my payslip pdf", limit=10, record=False)
    assert "payslip" not in [i.slug for i in found.items]


def test_added_article_is_the_only_one_embedded(kb_dirs, counting, embedder):
    articles, data = kb_dirs
    s = settings_for(articles, data)
    index_directory(s, counting)
    counting.take()
    (articles / "new-badge.md").write_text(
        article("new-badge", "Replace a lost badge", "Block the badge in the Facilities portal at once.", "lost badge"))
    summary = index_directory(s, counting)
    assert sorted(counting.take()) == sorted(set(units_of(articles, "new-badge")) - {"Who to contact: Call the service desk."})
    assert (summary.articles, summary.embedded_articles) == (5, 1)
    assert served(data, embedder).suggest("i lost my badge", record=False).items[0].slug == "new-badge"


def test_drafts_are_not_indexed(kb_dirs, counting):
    articles, data = kb_dirs
    text = article("secret-draft", "Draft page", "Unpublished text.", "draft").replace("published", "draft")
    (articles / "secret-draft.md").write_text(text)
    summary = index_directory(settings_for(articles, data), counting)
    assert summary.drafts == 1 and summary.articles == 4
    assert not any("Unpublished" in t for t in counting.take())


def test_model_change_reembeds_everything(kb_dirs, counting, embedder):
    articles, data = kb_dirs
    s = settings_for(articles, data)
    index_directory(s, counting)
    counting.take()
    other = CountingEmbedder(embedder, name="another-model")
    summary = index_directory(s, other)
    assert summary.embedded_articles == 4
    assert sorted(other.take()) == sorted({t for slug in TOPICS for t in units_of(articles, slug)})


# -- atomic swap ------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_crashed_build_leaves_the_served_index_intact(kb_dirs, counting, embedder, monkeypatch, error):
    articles, data = kb_dirs
    s = settings_for(articles, data)
    index_directory(s, counting)
    store = IndexStore(s.index_path)
    before, before_path = store.version(), store.current_path()

    (articles / "payslip.md").unlink()
    (articles / "new-one.md").write_text(article("new-one", "Brand new", "Fresh content.", "fresh"))

    def crash(*args, **kwargs):
        raise error("simulated crash mid-build")

    monkeypatch.setattr(LexicalIndex, "save", crash)
    with pytest.raises(error):
        index_directory(s, counting)
    monkeypatch.undo()

    assert store.version() == before and store.current_path() == before_path
    desk = served(data, embedder)
    assert sorted(desk.library.index.doc_ids()) == sorted(TOPICS)
    assert desk.suggest("download my payslip pdf", record=False).items[0].slug == "payslip"
    assert not list((s.index_path / "builds").glob("*.tmp")), "the failed build's temp dir was not cleaned up"

    # the next build succeeds and swaps in
    summary = index_directory(s, counting)
    assert summary.removed_articles == 1 and store.version() != before
    assert "new-one" in served(data, embedder).library.index.doc_ids()


def test_leftover_tmp_dirs_do_not_break_loading_or_building(kb_dirs, counting, embedder):
    articles, data = kb_dirs
    s = settings_for(articles, data)
    index_directory(s, counting)
    builds = s.index_path / "builds"
    stale = builds / "20000101T000000-1-000001.tmp"
    stale.mkdir()
    (stale / "vectors.npy").write_bytes(b"half-written")
    fresh = builds / "29990101T000000-2-000002.tmp"  # sorts after every real build, like a build in flight
    fresh.mkdir()
    old = time.time() - 3600
    os.utime(stale, (old, old))

    assert len(served(data, embedder).library.index) == 4
    counting.take()
    summary = index_directory(s, counting)
    assert summary.embedded_articles == 0 and counting.take() == []
    assert len(served(data, embedder).library.index) == 4
    assert not stale.exists(), "an hour-old crashed build should be pruned"
    assert fresh.exists(), "a recent .tmp may belong to a build in progress and must be left alone"


def test_old_builds_are_pruned_but_current_kept(kb_dirs, counting):
    articles, data = kb_dirs
    s = settings_for(articles, data)
    for n in range(5):
        (articles / "payslip.md").write_text(article("payslip", "Payslip", f"Version {n}.", "payslip"))
        index_directory(s, counting)
    builds = [p for p in (s.index_path / "builds").iterdir() if p.is_dir()]
    assert 1 <= len(builds) <= 4
    assert IndexStore(s.index_path).current_path() in [b.resolve() for b in builds]


# -- damaged and mismatched indexes -----------------------------------------------------------


@pytest.fixture
def built(kb_dirs, counting):
    articles, data = kb_dirs
    s = settings_for(articles, data)
    index_directory(s, counting)
    return s


def test_no_index_is_a_clear_error(tmp_path, embedder):
    with pytest.raises(IndexMissingError):
        IndexStore(tmp_path / "index").load(embedder)
    with pytest.raises(IndexUnavailableError) as info:
        served(tmp_path, embedder)
    assert "kb index" in info.value.message


@pytest.mark.parametrize("victim", ["docs.base.json", "docs.patch.json", "layout.npz", "manifest.json", "vectors.npy"])
def test_missing_file_in_current_build_is_a_clear_error(built, embedder, victim):
    current = IndexStore(built.index_path).current_path()
    (current / victim).unlink()
    with pytest.raises(IndexCorruptError) as info:
        IndexStore(built.index_path).load(embedder)
    assert victim in str(info.value)
    with pytest.raises(IndexUnavailableError) as info:
        served(built.data, embedder)
    assert victim in info.value.message and info.value.status_code == 503


@pytest.mark.parametrize("victim", ["vectors.npy", "layout.npz", "docs.patch.json", "manifest.json"])
def test_garbage_file_in_current_build_is_a_clear_error(built, embedder, victim):
    current = IndexStore(built.index_path).current_path()
    (current / victim).write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(IndexUnavailableError) as info:
        served(built.data, embedder)
    assert str(current) in info.value.message or "damaged" in info.value.message


def test_dangling_current_link_is_a_clear_error(built, embedder):
    import shutil

    current = IndexStore(built.index_path).current_path()
    shutil.rmtree(current)
    with pytest.raises(IndexUnavailableError) as info:
        served(built.data, embedder)
    assert "incomplete" in info.value.message or "kb index" in info.value.message


def test_damaged_index_is_rebuilt_in_full(built, counting):
    current = IndexStore(built.index_path).current_path()
    (current / "docs.patch.json").unlink()
    counting.take()
    summary = index_directory(built, counting)
    assert summary.embedded_articles == 4
    IndexStore(built.index_path).current_path()  # complete again


def test_model_mismatch_is_a_clear_error(built, embedder):
    other = CountingEmbedder(embedder, name="some-other-model")
    with pytest.raises(IndexCorruptError) as info:
        IndexStore(built.index_path).load(other)
    assert "some-other-model" in str(info.value) and embedder.name in str(info.value)
    with pytest.raises(IndexUnavailableError) as info:
        served(built.data, other)
    assert "some-other-model" in info.value.message and "rebuild" in info.value.message


def test_unchanged_files_are_not_parsed_again(kb_dirs, counting, monkeypatch):
    import kb.content.articles

    articles, data = kb_dirs
    s = settings_for(articles, data)
    index_directory(s, counting)
    parsed: list[str] = []
    real = kb.content.articles.parse
    monkeypatch.setattr(kb.content.articles, "parse", lambda source, name: parsed.append(name) or real(source, name))
    read: list[str] = []
    digest = kb.content.articles.source_digest
    monkeypatch.setattr(kb.content.articles, "source_digest", lambda source: read.append(source[:40]) or digest(source))
    # Files written within RACY_NS of a build are read again (their time stamp may not have moved
    # with an edit): so far every file is, but none is parsed, since their content is unchanged.
    index_directory(s, counting)
    assert len(read) == len(TOPICS) and parsed == []
    long_ago = time.time() - 3600
    for path in articles.glob("*.md"):
        os.utime(path, (long_ago, long_ago))
    index_directory(s, counting)  # stamps the old times
    read.clear()
    title, text, alias = TOPICS["payslip"]
    (articles / "payslip.md").write_text(article("payslip", title, text, alias, " Payslips appear on the 25th."))
    index_directory(s, counting)
    assert parsed == ["payslip.md"] and len(read) == 1  # the other three were neither read nor parsed
    parsed.clear()
    monkeypatch.setattr(kb.content.articles, "PARSER", kb.content.articles.PARSER + "-next")  # parsing code changed
    index_directory(s, counting)
    assert sorted(parsed) == sorted(f"{slug}.md" for slug in TOPICS)
    desk = served(data, counting)
    assert "25th" in desk.article("payslip").body and desk.article("vpn-drops").title == "VPN keeps disconnecting"


def test_lexical_reuse_scores_like_a_fresh_build():
    before = ["Clear a paper jam in tray 2", "VPN keeps disconnecting at home", "Book a parking space",
              "Order printer toner"]
    after = ["Clear a paper jam in tray 2", "Book a parking space on level -2", "Reset the VPN token",
             "VPN keeps disconnecting at home"]
    fresh = LexicalIndex.build(after)
    source = np.array([before.index(t) if t in before else -1 for t in after])
    assert source.tolist() == [0, -1, -1, 1]
    carried = [None if row >= 0 else text for row, text in zip(source, after)]  # carried rows are not read
    reused = LexicalIndex.build(carried, reuse=(LexicalIndex.build(before), source))
    for query in ("paper jam", "vpn", "parking level", "token reset", "printer toner jam", "nothing matches here"):
        assert reused.score(query) == pytest.approx(fresh.score(query), abs=1e-6), query
        assert reused.max_score(query) == pytest.approx(fresh.max_score(query))


def test_an_incremental_build_serves_what_a_fresh_build_serves(kb_dirs, counting, tmp_path):
    """Edit, add and remove articles across re-indexes: the result equals indexing the final files once."""
    import shutil

    articles, data = kb_dirs
    s = settings_for(articles, data)
    index_directory(s, counting)
    long_ago = time.time() - 3600
    for path in articles.glob("*.md"):
        os.utime(path, (long_ago, long_ago))  # stamped as old: carried over without being read
    index_directory(s, counting)
    title, text, alias = TOPICS["vpn-drops"]
    (articles / "vpn-drops.md").write_text(article("vpn-drops", title, text + " Then reinstall the client.", alias))
    (articles / "parking-space.md").unlink()
    (articles / "laptop.md").write_text(article("laptop", "Request a laptop", "Order it in the IT shop.", "new laptop"))
    summary = index_directory(s, counting)
    assert (summary.articles, summary.embedded_articles, summary.removed_articles) == (4, 2, 1)

    fresh_dir = tmp_path / "fresh"
    shutil.copytree(articles, fresh_dir / "articles")
    fresh = settings_for(fresh_dir / "articles", fresh_dir / "data")
    index_directory(fresh, counting)
    a, b = IndexStore(s.index_path).load(counting), IndexStore(fresh.index_path).load(counting)
    assert a.docs == b.docs and a.chunk_text == b.chunk_text and a.passage_ids == b.passage_ids
    for name in ("chunk_passage", "doc_chunk_start", "doc_passage_start"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    assert np.allclose(a.vectors[a.chunk_vector], b.vectors[b.chunk_vector], atol=1e-6)
    assert len(a.vectors) == len(b.vectors)  # vectors no document uses any more were dropped
    for query in ("vpn reinstall", "paper jam tray", "new laptop", "parking bay", "service desk"):
        x, y = a.search(query, k=3), b.search(query, k=3)
        assert [h.doc_id for h in x.hits] == [h.doc_id for h in y.hits], query
        assert [h.passage_id for h in x.hits] == [h.passage_id for h in y.hits], query
        for name in ("dense", "centroid", "lexical", "title"):  # the evidence is the same...
            assert [h.features[name] for h in x.hits] == pytest.approx([h.features[name] for h in y.hits], abs=1e-5)
        # ...and the classifier, warm-started from the previous build, converges to nearly the same fit
        assert [h.score for h in x.hits] == pytest.approx([h.score for h in y.hits], abs=0.02), query
    assert load_articles(a.path) == load_articles(b.path)
    assert [x.body for x in load_articles(a.path)] == [x.body for x in load_articles(b.path)]


def test_record_sets_link_their_base_and_rewrite_it_once_the_patch_grows(tmp_path, monkeypatch):
    import msgspec

    from search import records
    from search.records import RecordSet

    def build(name: str, rows, previous):
        path = tmp_path / name
        path.mkdir()
        RecordSet.write(path, "docs", rows, previous)
        return RecordSet(path, "docs")

    enc = msgspec.json.encode
    first = build("1", [enc({"n": i}) for i in range(6)], None)
    second = build("2", [0, 1, enc({"n": "two"}), 3, 5], first)  # row 4 removed, row 2 replaced
    assert [msgspec.json.decode(r) for r in second.all()] == [{"n": 0}, {"n": 1}, {"n": "two"}, {"n": 3}, {"n": 5}]
    assert second.base.stat().st_ino == first.base.stat().st_ino  # linked, not rewritten
    third = build("3", [2, 0, enc({"n": "new"})], second)  # a record added by the last patch is carried
    assert third.decoded() == [{"n": "two"}, {"n": 0}, {"n": "new"}]
    monkeypatch.setattr(records, "PATCH_MIN", 0)
    fourth = build("4", [0, 1, enc({"n": "more"})], third)  # 2 of 3 records in the patch: a new base
    assert fourth.base.stat().st_ino != third.base.stat().st_ino and fourth.added == []
    assert fourth.decoded() == [{"n": "two"}, {"n": 0}, {"n": "more"}]
    with pytest.raises(ValueError):
        RecordSet.write(tmp_path, "other", [0], None)  # nothing to keep a record from
