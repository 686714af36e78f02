"""The versioned JSON API under /api/v1: suggest, articles, feedback, events, widget config, health."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, Parameter
from litestar.response import Redirect

from kb.content.articles import SLUG, Article, render
from kb.serving.desk import Desk, Suggestions
from kb.errors import NotFoundError
from kb.storage.database import COMMENT_CHARS, record_event, record_feedback
from kb.storage.settle import SETTLE_SECONDS
from kb.tickets.intake import FIELD_CHARS
from kb.urls import Urls
from kb.web.client import client_ip, new_session, session_id

Text = Annotated[str, msgspec.Meta(max_length=4000)]
Short = Annotated[str, msgspec.Meta(max_length=200)]
EVENT_TYPES = ("session_start", "request_settled", "suggestions_shown", "suggestion_opened",
               "feedback", "ticket_started", "ticket_created", "article_view", "result_click")


class Problem(msgspec.Struct):
    """An error: the same shape for every 4xx and 5xx of the API."""

    status_code: int
    title: str
    detail: str
    extra: list[dict[str, str]] | None = None


_ERRORS = {400: "Bad request", 401: "Login required", 403: "Origin or role not allowed", 404: "Not found",
           415: "Body is not application/json", 422: "Invalid fields", 429: "Rate limited", 503: "Index unavailable"}
# Documented on every API route: the edge can answer any of them (CORS guard, body type, limits).
PROBLEMS = {code: ResponseSpec(data_container=Problem, description=text, generate_examples=False)
            for code, text in _ERRORS.items()}


class Passage(msgspec.Struct):
    text: str
    highlights: list[tuple[int, int]]


class SuggestionOut(msgspec.Struct):
    slug: str
    title: str
    url: str
    anchor: str
    section: str
    passage: Passage
    confidence: float
    locale: str


class SuggestOut(msgspec.Struct):
    request_id: str
    query: str
    locale: str
    answered: bool
    threshold: float
    fallback: bool
    suggestions: list[SuggestionOut]


class FeedbackIn(msgspec.Struct, forbid_unknown_fields=False):
    helpful: bool
    slug: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=SLUG.pattern)]
    request_id: Short = ""
    comment: Annotated[str, msgspec.Meta(max_length=COMMENT_CHARS)] = ""
    session: Short = ""  # a token from POST /api/v1/session; any other value records no session


class EventIn(msgspec.Struct, forbid_unknown_fields=False):
    session: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]  # as FeedbackIn.session
    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    data: dict[str, Any] = {}


class Created(msgspec.Struct):
    id: int
    status: str = "recorded"


def to_out(answer: Suggestions) -> SuggestOut:
    return SuggestOut(
        request_id=answer.request_id, query=answer.query, locale=answer.locale,
        answered=answer.answered, threshold=answer.threshold, fallback=answer.fallback,
        suggestions=[
            SuggestionOut(slug=i.slug, title=i.title, url=i.url, anchor=i.anchor, section=i.section,
                          passage=Passage(i.passage, list(i.highlights)), confidence=i.confidence, locale=i.locale)
            for i in answer.items
        ],
    )


@get("/suggest", responses=PROBLEMS, sync_to_thread=True, cache_control=None)
def suggest(
    request: Request, state: State,
    q: Annotated[str, Parameter(description="What the user typed (at most KB_MAX_QUERY_CHARS characters, 500 by"
                                            " default; longer is rejected with 400, not truncated)",
                                min_length=1, pattern=r"\S")],
    limit: Annotated[int | None, Parameter(ge=1, le=10, description="Default: KB_SUGGEST_LIMIT (3)")] = None,
    locale: Annotated[str | None, Parameter(max_length=35)] = None,
    session: Annotated[str, Parameter(max_length=200, description="A token from POST /api/v1/session;"
                                                                  " any other value records no session")] = "",
) -> Response[SuggestOut]:
    """Suggest up to `limit` passages that answer the request, with a calibrated confidence."""
    settings = state["settings"]
    state["limiter"].hit("suggest:" + client_ip(request), settings.rate_suggest_per_minute, 60)
    desk: Desk = state["desk"]
    answer = desk.suggest(q, limit=limit, locale=locale or request.headers.get("accept-language"),
                          session=session_id(state["db"], settings, session), kind="suggest", source="api")
    return Response(to_out(answer), headers={"Cache-Control": "no-store"})


class ArticleSummary(msgspec.Struct):
    slug: str
    title: str
    category: str
    locale: str
    updated: str
    url: str
    tags: list[str]


class ArticlePage(msgspec.Struct):
    items: list[ArticleSummary]
    page: int
    per_page: int
    total: int


class SectionOut(msgspec.Struct):
    anchor: str
    heading: str
    text: str


class ArticleOut(ArticleSummary):
    aliases: list[str]
    html: str
    passages: list[SectionOut]


def summary(a: Article, urls: Urls) -> ArticleSummary:
    return ArticleSummary(a.slug, a.title, a.category, a.locale, a.updated, urls.article(a.slug), list(a.tags))


@get("/articles", responses=PROBLEMS, sync_to_thread=False, cache_control=None)
def list_articles(
    state: State,
    page: Annotated[int, Parameter(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Parameter(ge=1, le=100)] = 20,
    locale: Annotated[str | None, Parameter(max_length=35)] = None,
    category: Annotated[str | None, Parameter(max_length=100)] = None,
) -> Response[ArticlePage]:
    """Published articles, paged, optionally filtered by locale and category."""
    items = state["desk"].articles(locale=locale, category=category)
    start = (page - 1) * per_page
    urls = state["settings"].urls
    body = ArticlePage([summary(a, urls) for a in items[start : start + per_page]], page, per_page, len(items))
    return Response(body, headers={"Cache-Control": "public, max-age=60"})


@get("/articles/{slug:str}", responses=PROBLEMS, sync_to_thread=False)
def get_article(state: State, slug: FromPath[str]) -> Response[ArticleOut] | Redirect:
    """One article: metadata, rendered safe HTML and its passages; a renamed article's old slug
    redirects (301) to its URL now."""
    if not SLUG.match(slug):
        raise NotFoundError(f"No article called {slug!r}.")
    moved = state["desk"].moved(slug)
    if moved:
        return Redirect(path=state["settings"].urls.api(f"articles/{moved}"), status_code=301)
    a = state["desk"].article(slug)
    body = ArticleOut(**msgspec.structs.asdict(summary(a, state["settings"].urls)), aliases=list(a.aliases),
                      html=render(a.body), passages=[SectionOut(s.anchor, s.heading, s.text) for s in a.sections])
    return Response(body, headers={"Cache-Control": "public, max-age=60"})


@post("/feedback", responses=PROBLEMS, sync_to_thread=True, status_code=201)
def feedback(request: Request, state: State, data: JSONBody[FeedbackIn]) -> Created:
    """Record "Was this helpful?" for a suggestion (request_id) or an article (slug)."""
    state["limiter"].hit("feedback:" + client_ip(request), state["settings"].rate_suggest_per_minute, 60)
    db = state["db"]
    session = session_id(db, state["settings"], data.session)
    state["desk"].article(data.slug)  # 404 for an unknown article
    row = record_feedback(db, request_id=data.request_id, slug=data.slug, helpful=data.helpful,
                          comment=data.comment.strip(), session=session,
                          source="widget" if data.request_id else "article")
    record_event(db, session=session, type="feedback", request_id=data.request_id, slug=data.slug,
                 data={"helpful": data.helpful})
    return Created(id=row)


@post("/events", responses=PROBLEMS, sync_to_thread=True, status_code=202)
def events(request: Request, state: State, data: JSONBody[EventIn]) -> Created:
    """Record one widget funnel event (see the event schema in the README)."""
    state["limiter"].hit("events:" + client_ip(request), state["settings"].rate_suggest_per_minute * 2, 60)
    payload = {k: v for k, v in data.data.items() if isinstance(k, str)}
    encoded = msgspec.json.encode(payload)
    if len(encoded) > 8000:
        from kb.errors import ValidationError

        raise ValidationError([{"key": "data", "message": "event data is too large (8000 bytes at most)"}])
    row = record_event(state["db"], session=session_id(state["db"], state["settings"], data.session), type=data.type,
                       request_id=str(payload.get("request_id", ""))[:100], slug=str(payload.get("slug", ""))[:200],
                       data=payload)
    return Created(id=row, status="accepted")


class SessionIn(msgspec.Struct, forbid_unknown_fields=False):
    session: Short = ""


class SessionOut(msgspec.Struct):
    session: str
    new: bool


@post("/session", responses=PROBLEMS, sync_to_thread=True, status_code=200)
def issue_session(state: State, data: JSONBody[SessionIn]) -> Response[SessionOut]:
    """The visitor's session token: the one sent if this server signed it, else a new one (`new`).

    Send it as `session` to suggest, feedback, events and tickets; a ticket's transcript holds
    only that session's requests, and only the holder of the token can name the session.
    """
    db, settings = state["db"], state["settings"]
    kept = data.session if session_id(db, settings, data.session) else ""
    body = SessionOut(kept or new_session(db, settings), new=not kept)
    return Response(body, headers={"Cache-Control": "no-store"})


class WidgetConfig(msgspec.Struct):
    """What the widget takes from the server, so that it and the server never disagree."""

    contact_mode: str  # self-service | neutral | ask-first (KB_CONTACT_MODE); a page's attribute wins
    settle_ms: int  # idle time after which a typed request has settled (kb/storage/settle.py)
    limits: dict[str, int]  # longest value of: query, name, email, subject, body, comment


@get("/widget/config", responses=PROBLEMS, sync_to_thread=False, cache_control=None)
def widget_config(state: State) -> Response[WidgetConfig]:
    """When to offer contact, when a typed request has settled, and the field length limits."""
    settings = state["settings"]
    body = WidgetConfig(settings.contact_mode, round(SETTLE_SECONDS * 1000),
                        {"query": settings.max_query_chars, "comment": COMMENT_CHARS, **FIELD_CHARS})
    return Response(body, headers={"Cache-Control": "public, max-age=300"})


class Health(msgspec.Struct):
    status: str
    index_loaded: bool
    articles: int
    index_age_seconds: float
    model: str
    index_version: str  # the build served: every replica of a desk converges on the publisher's
    request_log_queued: int  # suggests answered but not logged yet (the database is slow or down)
    request_log_dropped: int  # suggests never logged: the queue outgrew its bound while the database was down


@get("/healthz", responses=PROBLEMS, sync_to_thread=False, cache_control=None)
def healthz(state: State) -> Response[Health]:
    """Whether the index is loaded, which build, how many articles it holds and how old it is; how
    much of the request log waits for the database. Never touches the database: a balancer keeps
    sending suggests to a replica whose database is restarting."""
    desk: Desk = state["desk"]
    library, db = desk.library, state["db"]
    body = Health("ok", True, len(library.articles), round(time.time() - library.index.created, 1), desk.embedder.name,
                  Path(library.version or "").name, db.queued, db.dropped)
    return Response(body, headers={"Cache-Control": "no-store"})


ROUTES = [Router(path="/api/v1", route_handlers=[suggest, list_articles, get_article, feedback, events, issue_session,
                                                        widget_config, healthz])]

__all__ = ["ROUTES", "asdict"]
