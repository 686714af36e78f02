"""Articles to a search index: the one code path used by `kb index`, `kb serve` and `kb eval`."""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import msgspec

from search.embed import Embedder, SentenceTransformerEmbedder
from search.errors import IndexCorruptError, IndexMissingError, StaleBuildError
from search.fusion import Calibration, Fusion
from search.glossary import Glossary
from search.modelfiles import DEFAULT_CACHE
from search.model import Document, Passage
from search.store import BuildReport, IndexStore, payloads

import kb.content.articles as article_files
from kb.content.articles import Article, Section, Stamp, Unchanged, load_dir
from kb.content.publish import require_articles_source
from kb.errors import ArticleError
from kb.settings import Settings, SettingsError

log = logging.getLogger("kb.index")
SOURCES_FILE = "sources.json"  # what each published article's file was: digest, size, mtime and slug
CALIBRATION_FILE = Path(__file__).with_name("calibration.json")


def make_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """Load the configured model with the configured backend (offline)."""
    return SentenceTransformerEmbedder(settings.model, backend=settings.backend, threads=settings.encode_threads)


def make_glossary(settings: Settings) -> Glossary | None:
    """The bilingual dictionary that crosses languages, parsed once into kb's cache.

    None when the setting is empty, or (with a warning: requests are then answered only by
    articles that share their words) when the file is not there; an unreadable one is an error.
    """
    if not settings.glossary:
        return None
    path = Path(settings.glossary)
    try:
        return _glossary(str(path), path.stat().st_mtime_ns)
    except FileNotFoundError as exc:
        log.warning("glossary %s: %s; requests will not cross languages (install Debian's mueller7-dict, "
                    "or set KB_GLOSSARY='' to silence this)", path, exc.strerror or exc)
        return None
    except (UnicodeDecodeError, ValueError, OSError) as exc:
        raise SettingsError(f"glossary {path} is unreadable: {exc}") from exc


@functools.lru_cache(maxsize=2)
def _glossary(path: str, mtime_ns: int) -> Glossary:
    """One parsed dictionary per file version, shared by every desk of the process."""
    return Glossary.load(Path(path), DEFAULT_CACHE)


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


def default_calibration() -> tuple[Calibration | None, Fusion | None, dict[str, tuple[Fusion, Calibration]] | None]:
    """The calibration and fusion weights shipped with kb, fitted by `kb calibrate` on data: the
    default ones and those of each request language."""
    if not CALIBRATION_FILE.exists():
        return None, None, None
    data = json.loads(CALIBRATION_FILE.read_text())
    locales = {loc: (Fusion.from_dict(t.get("fusion")), Calibration.from_dict(t.get("calibration")))
               for loc, t in (data.get("locales") or {}).items()}
    return Calibration.from_dict(data.get("calibration")), Fusion.from_dict(data.get("fusion")), locales


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
    articles: Sequence[Article | Unchanged],
    root: Path,
    embedder: Embedder,
    skipped: Sequence[ArticleError] = (),
    calibration: Calibration | None = None,
    fusion: Fusion | None = None,
    dense_kind: str = "auto",
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    digests: dict[str, str] | None = None,
    stats: dict[str, tuple[int, int]] | None = None,
    base: Path | None = None,
    stamped_at: int = 0,
    locales: dict[str, tuple[Fusion, Calibration]] | None = None,
) -> IndexSummary:
    """Index the published articles into root (incrementally) and swap the new build in.

    `Unchanged` articles are carried over from the build `base` as it stored them.
    """
    published = [a for a in articles if a.published]
    if calibration is None and fusion is None and locales is None:
        calibration, fusion, locales = default_calibration()
    stamps = {a.path: [(digests or {}).get(a.path, ""), *(stats or {}).get(a.path, (-1, -1)), a.slug] for a in published}
    report: BuildReport = IndexStore(root).build(
        [a.slug if isinstance(a, Unchanged) else to_document(a) for a in published],
        embedder,
        calibration=calibration,
        fusion=fusion,
        dense_kind=dense_kind,
        progress=progress,
        on_total=on_total,
        base=base,
        locales=locales,
        payloads=[None if isinstance(a, Unchanged) else msgspec.json.encode(_article_record(a)) for a in published],
        files={
            SOURCES_FILE: msgspec.json.encode({"parser": article_files.PARSER, "stamped_at": stamped_at, "files": stamps}),
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

    Files the live build recorded with the same size and modification time (or the same content)
    are carried over from it, not read or parsed again. A server that pulls its index from a
    publisher (KB_INDEX_SOURCE) refuses: builds are made once, where the articles are.
    """
    require_articles_source(settings)
    now = time.time_ns()  # before any file is looked at
    base, stamps, stamped_at = live_stamps(settings.index_path)
    if stamps:
        loaded = load_dir(settings.articles, stamps=stamps, stamped_at=stamped_at)
        try:
            return index_articles(loaded.articles, settings.index_path, embedder, skipped=loaded.errors,
                                  digests=loaded.digests, stats=loaded.stats, base=base, stamped_at=now, **kwargs)
        except (StaleBuildError, IndexCorruptError):
            pass  # the build the stamps came from is gone or damaged: read everything
    loaded = load_dir(settings.articles)
    return index_articles(loaded.articles, settings.index_path, embedder, skipped=loaded.errors,
                          digests=loaded.digests, stats=loaded.stats, stamped_at=now, **kwargs)


def live_stamps(root: Path) -> tuple[Path | None, dict[str, Stamp], int]:
    """The live build, what it recorded of each published file, and when; no stamps if none are usable."""
    try:
        build = IndexStore(root).current_path()
        sources = msgspec.json.decode((build / SOURCES_FILE).read_bytes())
        if sources.get("parser") != article_files.PARSER:
            return None, {}, 0  # parsing changed: every file is parsed again
        return build, {name: Stamp(*entry) for name, entry in sources["files"].items()}, int(sources["stamped_at"])
    except (IndexMissingError, IndexCorruptError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, {}, 0


def _article_record(article: Article) -> dict:
    """An article as JSON (dataclasses.asdict deep-copies every string: 2 s on 10k articles)."""
    record = {f.name: getattr(article, f.name) for f in fields(Article)}
    record["sections"] = [{f.name: getattr(s, f.name) for f in fields(Section)} for s in article.sections]
    return record


def load_articles(build: Path) -> list[Article]:
    """The articles snapshot stored with an index build."""
    try:
        return payloads(build, Article)
    except msgspec.ValidationError as exc:
        raise IndexCorruptError(f"index build {build}: its articles are unreadable: {exc}") from exc
