"""Articles to a search index: the one code path used by `kb index`, `kb serve` and `kb eval`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import msgspec

from search.embed import Embedder, SentenceTransformerEmbedder
from search.fusion import Calibration, Fusion
from search.errors import IndexCorruptError, IndexMissingError
from search.index import BuildReport, IndexStore
from search.model import Document, Passage

from kb.articles import Article, Section, load_dir
from kb.errors import ArticleError
from kb.settings import Settings

ARTICLES_FILE = "articles.json"
SOURCES_FILE = "sources.json"  # file name -> digest of the source each published article came from
CALIBRATION_FILE = Path(__file__).with_name("calibration.json")


def make_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """Load the configured model with the configured backend (offline)."""
    return SentenceTransformerEmbedder(settings.model, backend=settings.backend, threads=settings.encode_threads)


def to_document(article: Article) -> Document:
    """An article as the engine sees it: a title, aliases and one passage per section."""
    return Document(
        id=article.slug,
        title=article.title,
        aliases=article.aliases,
        passages=tuple(
            Passage(id=f"{article.slug}#{s.anchor}", heading=s.heading, text=s.text)
            for s in article.sections
        ),
    )


def default_calibration() -> tuple[Calibration | None, Fusion | None]:
    """The calibration and fusion weights shipped with kb, fitted by `kb calibrate` on data."""
    if not CALIBRATION_FILE.exists():
        return None, None
    data = json.loads(CALIBRATION_FILE.read_text())
    return Calibration.from_dict(data.get("calibration")), Fusion.from_dict(data.get("fusion"))


@dataclass
class IndexSummary:
    """What `kb index` reports."""

    articles: int
    drafts: int
    passages: int
    embedded_articles: int
    removed_articles: int
    seconds: float
    skipped: list[ArticleError] = field(default_factory=list)
    path: str = ""


def index_articles(
    articles: Sequence[Article],
    root: Path,
    embedder: Embedder,
    skipped: Sequence[ArticleError] = (),
    calibration: Calibration | None = None,
    fusion: Fusion | None = None,
    dense_kind: str = "auto",
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    digests: dict[str, str] | None = None,
) -> IndexSummary:
    """Index the published articles into root (incrementally) and swap the new build in."""
    published = [a for a in articles if a.published]
    if calibration is None and fusion is None:
        calibration, fusion = default_calibration()
    report: BuildReport = IndexStore(root).build(
        [to_document(a) for a in published],
        embedder,
        calibration=calibration,
        fusion=fusion,
        dense_kind=dense_kind,
        progress=progress,
        on_total=on_total,
        files={
            ARTICLES_FILE: msgspec.json.encode([_article_record(a) for a in published]),
            SOURCES_FILE: json.dumps({a.path: (digests or {}).get(a.path, "") for a in published}),
        },
    )
    return IndexSummary(
        articles=len(published),
        drafts=len(articles) - len(published),
        passages=report.passages,
        embedded_articles=report.embedded_documents,
        removed_articles=report.removed_documents,
        seconds=report.seconds,
        skipped=list(skipped),
        path=str(report.path),
    )


def index_directory(settings: Settings, embedder: Embedder, **kwargs) -> IndexSummary:
    """Load the articles directory, skipping bad files with their reasons, and index it.

    Files whose source is unchanged since the live build are taken from it rather than parsed.
    """
    loaded = load_dir(settings.articles, known=previous_articles(settings.index_path))
    return index_articles(loaded.articles, settings.index_path, embedder, skipped=loaded.errors,
                          digests=loaded.digests, **kwargs)


def previous_articles(root: Path) -> dict[tuple[str, str], Article]:
    """The live build's published articles keyed by (file name, source digest); empty if none."""
    try:
        build = IndexStore(root).current_path()
        digests = json.loads((build / SOURCES_FILE).read_text())
        return {(a.path, digests[a.path]): a for a in load_articles(build) if digests.get(a.path)}
    except (IndexMissingError, IndexCorruptError, OSError, ValueError, KeyError, TypeError):
        return {}  # nothing to reuse: every file is parsed


def _article_record(article: Article) -> dict:
    """An article as JSON (dataclasses.asdict deep-copies every string: 2 s on 10k articles)."""
    record = {f.name: getattr(article, f.name) for f in fields(Article)}
    record["sections"] = [{f.name: getattr(s, f.name) for f in fields(Section)} for s in article.sections]
    return record


def load_articles(build: Path) -> list[Article]:
    """The articles snapshot stored with an index build."""
    records = json.loads((build / ARTICLES_FILE).read_text())
    out = []
    for r in records:
        sections = tuple(Section(**s) for s in r.pop("sections"))
        r["tags"], r["aliases"] = tuple(r["tags"]), tuple(r["aliases"])
        out.append(Article(**r, sections=sections))
    return out
