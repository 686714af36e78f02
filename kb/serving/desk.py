"""The help desk service: the live index and articles, suggestions with locale fallback, recording.

The web layer and the CLI call this; it never touches HTTP itself. On a replica that pulls its
index (KB_INDEX_SOURCE) the desk's puller fetches each build the publisher offers
(kb/content/publish.py) before the swap check.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from search.embed import submit_queries
from search.errors import IndexCorruptError, IndexMissingError
from search.index import Index, crossing
from search.language import detect, pick
from search.store import IndexStore
from search.model import Hit, Results
from search.text import highlight

from kb.content.articles import Article
from kb.errors import IndexUnavailableError, InvalidQueryError, NotFoundError
from kb.content.indexer import load_articles, make_glossary
from kb.content.publish import Puller
from kb.settings import Settings
from kb.storage.database import Database, record_request
from kb.storage.secrets import INDEX_TOKEN, shared_secret

SNIPPET_CHARS = 320


@dataclass(frozen=True)
class Suggestion:
    """One suggested passage: what the widget and the results page show."""

    slug: str
    title: str
    url: str
    anchor: str
    section: str
    passage: str
    highlights: list[tuple[int, int]]
    confidence: float
    locale: str
    category: str


@dataclass(frozen=True)
class Suggestions:
    """The answer to one request."""

    request_id: str
    query: str
    locale: str
    answered: bool
    threshold: float
    fallback: bool
    items: list[Suggestion] = field(default_factory=list)


class Library:
    """One loaded index build and the article snapshot that was indexed with it."""

    def __init__(self, index: Index, articles: list[Article], version: str | None) -> None:
        self.index = index
        self.version = version
        self.articles = {a.slug: a for a in articles}
        self.by_locale: dict[str, list[str]] = {}
        for a in articles:
            self.by_locale.setdefault(a.locale, []).append(a.slug)
        self.rows_by_locale = {locale: index.rows(slugs) for locale, slugs in self.by_locale.items()}
        # an article's earlier slugs (renamed in the editor) -> its slug now
        self.redirects = {old: a.slug for a in articles for old in a.redirect_from if old not in self.articles}
        self.loaded_at = time.time()


def validate_query(query: str | None, max_chars: int) -> str:
    """Normalise whitespace; reject empty and over-long queries with a clear message."""
    text = re.sub(r"\s+", " ", query or "").strip()
    if not text:
        raise InvalidQueryError("The query is empty: type what you need help with.", field="q")
    if len(text) > max_chars:
        raise InvalidQueryError(
            f"The query is {len(text)} characters long; the limit is {max_chars}.", field="q"
        )
    return text


def snippet(text: str, focus: str, query: str, width: int = SNIPPET_CHARS) -> tuple[str, list[tuple[int, int]]]:
    """Cut a window of a passage around its best-matching chunk, with highlight spans."""
    text = re.sub(r"[ \t]+", " ", text)
    start = text.find(focus[:60]) if focus else -1
    if len(text) <= width:
        out = text
    else:
        start = max(0, start - 40) if start > 0 else 0
        if start:
            space = text.find(" ", start)
            start = space + 1 if 0 <= space < start + 20 else start
        out = text[start : start + width]
        cut = out.rfind(" ")
        if start + width < len(text) and cut > width * 0.6:
            out = out[:cut]
        out = ("…" if start else "") + out + ("…" if start + len(out) < len(text) else "")
    return out, highlight(out, query)


class Desk:
    """Owns the live library (hot-swapped when a new build appears) and answers requests."""

    def __init__(self, settings: Settings, embedder, db: Database | None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.db = db
        self.store = IndexStore(settings.index_path)
        self.glossary = make_glossary(settings)
        self._library: Library | None = None
        self._swap_lock = threading.Lock()
        self.puller: Puller | None = None
        if settings.index_source and db is not None:
            self.puller = Puller(settings, lambda: shared_secret(db, INDEX_TOKEN), model=embedder.name)

    # -- index lifecycle --------------------------------------------------------------------

    def load(self) -> Library:
        """Load the current build; a missing or damaged index is a clear domain error."""
        version = self.store.version()
        try:
            index = self.store.load(self.embedder, glossary=self.glossary)
            library = Library(index, load_articles(index.path), version)
        except (IndexMissingError, IndexCorruptError) as exc:
            raise IndexUnavailableError(str(exc)) from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexUnavailableError(f"index at {self.store.root} is damaged: {exc}") from exc
        self._library = library
        return library

    def reload_if_changed(self) -> bool:
        """Swap in a rebuilt index; readers holding the old library keep using it safely."""
        version = self.store.version()
        if self._library is not None and version == self._library.version:
            return False
        with self._swap_lock:
            if self._library is not None and self.store.version() == self._library.version:
                return False
            self.load()
            return True

    def refresh(self) -> bool:
        """Pull a new build from the publisher (on a replica), then swap in whatever build is live."""
        if self.puller is not None:
            self.puller.pull()  # a failure is logged there; the live build keeps serving
        return self.reload_if_changed()

    @property
    def library(self) -> Library:
        library = self._library
        if library is None:
            raise IndexUnavailableError("The search index is not loaded yet.")
        return library

    # -- queries --------------------------------------------------------------------------

    def reading(self, text: str, ui_locale: str | None) -> tuple[str, str]:
        """The language of a request (from its text; the UI locale breaks ties) and the text as
        meant (typed on the wrong keyboard layout, it is read on the right one)."""
        detection = detect(text)
        ui = self.pick_locale(ui_locale)
        language = pick(detection, ui)
        return (language if language in self.settings.locales else ui), detection.text

    def suggest(
        self, query: str | None, *, limit: int | None = None, locale: str | None = None,
        session: str = "", kind: str = "suggest", source: str = "api", record: bool = True,
    ) -> Suggestions:
        """Answer a request: passages in its language first, others as a fallback.

        The language is the request's own (search/language.py); `locale` (the UI's) breaks ties.
        """
        text = validate_query(query, self.settings.max_query_chars)
        limit = max(1, min(limit or self.settings.suggest_limit, 10))
        locale, meant = self.reading(text, locale)
        library = self.library
        own = library.by_locale.get(locale, [])
        index = library.index
        # BM25 needs no vector: it is worked out while the encoder runs on another thread
        pending = submit_queries(index.embedder, [meant])
        lexical = index.lexical_evidence(meant)
        vector = pending()[0]
        if own:  # one scoring pass ranks the request's language and, for the fallback, every language
            results, anywhere = index.search_scoped(meant, library.rows_by_locale[locale], k=limit, vector=vector,
                                                    lexical=lexical, locale=locale)
        else:
            results, anywhere = None, index.search(meant, k=limit, vector=vector, lexical=lexical, locale=locale)
        fallback = False
        if anywhere is not None:  # only made when the user's locale has no confident answer
            top_foreign = anywhere.hits and library.articles[anywhere.hits[0].doc_id].locale != locale
            if results is None or (anywhere.answered and top_foreign) or not results.hits:
                fallback = bool(top_foreign)
                results = anywhere
        assert results is not None  # search_scoped or the fallback always answers
        if not results.answered:  # no article in any language matched the words: cross by a glossary
            across = self._across(library, meant, locale, limit)
            if across is not None:
                results, fallback = across, True
        items = self._in_language(library, [self._suggestion(library, hit, meant) for hit in results.hits], locale, meant)
        fallback = fallback and any(i.locale != locale for i in items)
        answer = Suggestions(
            request_id="r_" + secrets.token_hex(8), query=text, locale=locale,
            answered=results.answered, threshold=results.threshold, fallback=fallback, items=items,
        )
        if record and self.db is not None:
            record_request(
                self.db, request_id=answer.request_id, kind=kind, session=session, query=text,
                locale=locale, answered=answer.answered,
                top_confidence=items[0].confidence if items else 0.0, fallback=fallback,
                results=[{"slug": i.slug, "anchor": i.anchor, "confidence": round(i.confidence, 4)} for i in items],
                source=source,
            )
        return answer

    def _across(self, library: Library, meant: str, locale: str, limit: int) -> Results | None:
        """The first other language whose articles answer the request's gloss (search/glossary.py)."""
        for other, slugs in library.by_locale.items():
            if other != locale:
                found = library.index.search_across(meant, slugs, k=limit, locale=crossing(locale, other))
                if found is not None and found.answered:
                    return found
        return None

    def _suggestion(self, library: Library, hit: Hit, query: str) -> Suggestion:
        article = library.articles[hit.doc_id]
        anchor = hit.passage_id.split("#", 1)[1] if "#" in hit.passage_id else ""
        section = article.section(anchor) or article.sections[0]
        text, spans = snippet(section.text, hit.chunk, query)
        return Suggestion(
            slug=article.slug, title=article.title,
            url=self.settings.urls.article(article.slug, anchor),
            anchor=anchor, section=section.heading, passage=text, highlights=spans,
            confidence=round(hit.confidence, 4), locale=article.locale, category=article.category,
        )

    def _in_language(self, library: Library, items: list[Suggestion], locale: str, query: str) -> list[Suggestion]:
        """Another language's article the writer translated into the request's language is shown as
        that translation (its opening passage), with the confidence the match earned."""
        out: list[Suggestion] = []
        seen = {i.slug for i in items}
        for item in items:
            twin = library.articles.get(library.articles[item.slug].translation(locale) or "")
            if item.locale == locale or twin is None or twin.slug in seen:
                out.append(item)
                continue
            seen.add(twin.slug)
            section = twin.sections[0]
            text, spans = snippet(section.text, "", query)
            url = f"/articles/{twin.slug}" + (f"#{section.anchor}" if section.anchor else "")
            out.append(replace(item, slug=twin.slug, title=twin.title, url=url, anchor=section.anchor,
                               section=section.heading, passage=text, highlights=spans, locale=twin.locale,
                               category=twin.category))
        return out

    def replay(self, query: str, locale: str | None = None, k: int = 3) -> Results:
        """Run a request against the live index without recording it (gap replay, eval), read
        and tuned for its language as `suggest` reads it."""
        language, meant = self.reading(validate_query(query, self.settings.max_query_chars), locale)
        library = self.library
        results = library.index.search(meant, k=k, locale=language)
        return results if results.answered else self._across(library, meant, language, k) or results

    def pick_locale(self, locale: str | None) -> str:
        """A supported locale from a ?locale= value or an Accept-Language header."""
        for part in (locale or "").split(","):
            tag = part.split(";")[0].strip().lower()[:2]
            if tag in self.settings.locales:
                return tag
        return self.settings.default_locale

    # -- articles -------------------------------------------------------------------------

    def article(self, slug: str) -> Article:
        article = self.library.articles.get(slug)
        if article is None:
            raise NotFoundError(f"No article called {slug!r}.", slug=slug)
        return article

    def moved(self, slug: str) -> str | None:
        """The slug now of an article that had `slug` before a rename, if any."""
        return self.library.redirects.get(slug)

    def articles(self, locale: str | None = None, category: str | None = None) -> list[Article]:
        items = self.library.articles.values()
        return sorted(
            (a for a in items if (not locale or a.locale == locale) and (not category or a.category == category)),
            key=lambda a: a.title.lower(),
        )

    def categories(self, locale: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for a in self.articles(locale):
            counts[a.category] = counts.get(a.category, 0) + 1
        return dict(sorted(counts.items()))

    def translations(self, slug: str) -> list[Article]:
        """The published articles an article declares as itself in other languages."""
        articles = self.library.articles
        return [articles[other] for _, other in self.article(slug).translations if other in articles]

    def related(self, slug: str, k: int = 4) -> list[Article]:
        """Articles nearest by embedding: the mean of this article's chunk vectors as the query."""
        library = self.library
        article = self.article(slug)
        vectors = library.index.document_vectors(slug)
        centre = vectors.mean(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-9)
        same = [s for s in library.by_locale.get(article.locale, []) if s != slug]
        results = library.index.search(article.title, k=k + 1, only=same, vector=centre)
        return [library.articles[h.doc_id] for h in results.hits if h.doc_id != slug][:k]

    @property
    def index_root(self) -> Path:
        return self.store.root
