"""Server-rendered help-center pages (Jinja2, autoescaped, usable without JavaScript)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from litestar import MediaType, Request, get, post
from litestar.datastructures import CacheControlHeader, Cookie, State
from litestar.params import FromPath, Parameter, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router

from kb.content.articles import SLUG, render, toc
from kb.serving.desk import Desk
from kb.errors import NotFoundError, ValidationError
from kb.storage.database import COMMENT_CHARS, record_event, record_feedback
from kb.tickets.intake import create_ticket
from kb.urls import Urls
from kb.web import i18n
from kb.web.client import client_ip, cookie_name, new_session, session_id

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE, LOCALE_COOKIE = "kb_session", "kb_locale"
ANCHOR = re.compile(r"^[\w-]{1,200}$")
REQUEST_ID = re.compile(r"^r_[0-9a-f]{8,32}$")
TICKET_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
NO_STORE = {"Cache-Control": "no-store"}
CONTACT_FIELDS = ("name", "email", "subject", "description", "category")
FORM_KEYS = {"body": "description"}  # kb.tickets.intake names the description "body"
Short = Annotated[str, msgspec.Meta(max_length=200)]


class FeedbackForm(msgspec.Struct):
    helpful: Literal["yes", "no"]
    comment: Annotated[str, msgspec.Meta(max_length=COMMENT_CHARS)] = ""


class ContactForm(msgspec.Struct, forbid_unknown_fields=False):
    name: str = ""
    email: str = ""
    subject: str = ""
    description: str = ""
    category: str = ""
    website: str = ""  # the honeypot: people never see it, bots fill it in
    q: str = ""


# -- request context ----------------------------------------------------------------------


def session_of(request: Request) -> str:
    """The visitor's portal session id: from the kb_session cookie if this server signed it (the
    same tokens as POST /api/v1/session), or a new one whose cookie goes with this response."""
    sid = request.state.get("kb_session")
    if sid is None:
        db, settings = request.app.state["db"], request.app.state["settings"]
        sid = session_id(db, settings, request.cookies.get(cookie_name(settings, SESSION_COOKIE)))
        if not sid:
            token = request.state["kb_session_new"] = new_session(db, settings)
            sid = session_id(db, settings, token)
        request.state["kb_session"] = sid
    return sid


def locale_of(request: Request) -> str:
    """?locale= first, then the locale cookie, then Accept-Language; the default otherwise."""
    desk: Desk | None = request.app.state.get("desk")
    cookie = cookie_name(request.app.state["settings"], LOCALE_COOKIE)
    sources = (request.query_params.get("locale"), request.cookies.get(cookie),
               request.headers.get("accept-language"))
    wanted = ",".join(s[:100] for s in sources if s)
    return desk.pick_locale(wanted) if desk else request.app.state["settings"].default_locale


def _switch_url(request: Request, locale: str) -> str:
    params = {k: v for k, v in request.query_params.items() if k in ("q", "category")}
    return urls_of(request).with_locale(request.url.path, locale, **params)


def urls_of(request: Request) -> Urls:
    return request.app.state["settings"].urls


def _cookies(request: Request, locale: str) -> list[Cookie]:
    """The session cookie when it is new, the locale cookie when ?locale= changed it (path=/, no
    Domain: with secure cookies on they carry the __Host- prefix)."""
    settings = request.app.state["settings"]
    secure, locale_cookie = settings.secure_cookies, cookie_name(settings, LOCALE_COOKIE)
    out = []
    if request.state.get("kb_session_new"):
        out.append(Cookie(key=cookie_name(settings, SESSION_COOKIE), value=request.state["kb_session_new"],
                          httponly=True, samesite="lax", secure=secure, max_age=180 * 86400, path="/"))
    if request.query_params.get("locale") and request.cookies.get(locale_cookie) != locale:
        out.append(Cookie(key=locale_cookie, value=locale, httponly=True, samesite="lax", secure=secure,
                          max_age=365 * 86400, path="/"))
    return out


def context(request: Request, locale: str, **extra: Any) -> dict[str, Any]:
    """What every template needs: the locale, its strings and the language switcher."""
    locales = request.app.state["settings"].locales
    return {"locale": locale, "t": i18n.strings(locale), "category_name": i18n.category_name,
            "language_name": i18n.language_name,
            "count_articles": i18n.count_articles, "date": i18n.format_date, "q": "",
            "languages": [(code, i18n.language_name(code), _switch_url(request, code)) for code in locales],
            **extra}


def page(request: Request, name: str, locale: str, status: int = 200, **extra: Any) -> Template:
    """A portal page: never cached (it depends on cookies and the query), cookies set if new."""
    return Template(template_name=name, context=context(request, locale, **extra), status_code=status,
                    headers=NO_STORE, cookies=_cookies(request, locale), media_type=MediaType.HTML)


def segments(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """Split a passage into (text, highlighted) runs; the template escapes every run."""
    out: list[tuple[str, bool]] = []
    pos = 0
    for start, end in sorted(spans):
        start, end = max(start, pos), min(end, len(text))
        if start >= end:
            continue
        if start > pos:
            out.append((text[pos:start], False))
        out.append((text[start:end], True))
        pos = end
    if pos < len(text):
        out.append((text[pos:], False))
    return out


# -- pages --------------------------------------------------------------------------------


@get("/", sync_to_thread=False)
def home(request: Request, state: State) -> Template:
    """The search box, the categories with their article counts and recently updated articles."""
    locale, desk = locale_of(request), state["desk"]
    session_of(request)
    counts = sorted(desk.categories(locale).items(), key=lambda kv: i18n.category_order(kv[0]))
    recent = sorted(desk.articles(locale), key=lambda a: a.updated, reverse=True)[:6]
    return page(request, "home.html", locale, categories=counts, recent=recent)


@get("/categories/{category:str}", sync_to_thread=False)
def category(request: Request, state: State, category: FromPath[str]) -> Template:
    """A category's articles in the visitor's locale, then those in other languages."""
    locale, desk = locale_of(request), state["desk"]
    items = desk.articles(category=category) if SLUG.match(category) else []
    if not items:
        raise NotFoundError(f"No category called {category!r}.")
    own = [a for a in items if a.locale == locale]
    return page(request, "category.html", locale, category=category, own=own,
                others=[a for a in items if a.locale != locale])


@get("/articles/{slug:str}", sync_to_thread=True)
def article(request: Request, state: State, slug: FromPath[str],
            feedback: Annotated[str, Parameter(max_length=10)] = "") -> Template | Redirect:
    """An article: safe rendered Markdown, contents, feedback form and related articles."""
    locale, desk = locale_of(request), state["desk"]
    if not SLUG.match(slug):
        raise NotFoundError(f"No article called {slug!r}.")
    moved = desk.moved(slug)
    if moved:  # renamed: the old URL keeps working
        return Redirect(path=urls_of(request).article(moved, **dict(request.query_params)), status_code=301)
    a = desk.article(slug)
    record_event(state["db"], session=session_of(request), type="article_view", slug=slug, data={"locale": a.locale},
                 deferred=True)
    return page(request, "article.html", locale, article=a, html=render(a.body), toc=toc(a.body),
                related=desk.related(slug), translations=desk.translations(slug),
                feedback=feedback if feedback in ("yes", "no") else "")


@post("/articles/{slug:str}/feedback", sync_to_thread=True)
def article_feedback(request: Request, state: State, slug: FromPath[str],
                     data: URLEncodedBody[FeedbackForm]) -> Redirect:
    """Record "Was this helpful?" from the article page, then show the thank-you (303)."""
    state["limiter"].hit("feedback:" + client_ip(request), state["settings"].rate_suggest_per_minute, 60)
    if not SLUG.match(slug):
        raise NotFoundError(f"No article called {slug!r}.")
    state["desk"].article(slug)
    sid, helpful = session_of(request), data.helpful == "yes"
    record_feedback(state["db"], request_id="", slug=slug, helpful=helpful, comment=data.comment.strip(),
                    session=sid, source="article")
    record_event(state["db"], session=sid, type="feedback", slug=slug, data={"helpful": helpful, "source": "article"})
    return Redirect(path=urls_of(request).article(slug, "feedback", feedback=data.helpful), status_code=303,
                    headers=NO_STORE, cookies=_cookies(request, locale_of(request)))


@get("/search", sync_to_thread=True)
def search(request: Request, state: State, q: Annotated[str, Parameter(max_length=5000)] = "") -> Template:
    """Search results with highlighted passages, or an honest "no answer" state."""
    state["limiter"].hit("search:" + client_ip(request), state["settings"].rate_suggest_per_minute, 60)
    locale = locale_of(request)
    answer = state["desk"].suggest(q, limit=10, locale=locale, session=session_of(request),
                                   kind="search", source="portal")
    return page(request, "search.html", locale, q=answer.query, answer=answer, segments=segments,
                language=i18n.language_name(locale), contact_url=urls_of(request).contact(answer.query))


@get("/go", sync_to_thread=True)
def go(request: Request, state: State, slug: Short, r: Short = "", anchor: Short = "") -> Redirect:
    """Record a click on a search result, then send the visitor to the article (never elsewhere)."""
    if not SLUG.match(slug):
        raise NotFoundError(f"No article called {slug!r}.")
    state["desk"].article(slug)
    anchor = anchor if ANCHOR.match(anchor) else ""
    record_event(state["db"], session=session_of(request), type="result_click",
                 request_id=r if REQUEST_ID.match(r) else "", slug=slug, data={"anchor": anchor}, deferred=True)
    return Redirect(path=urls_of(request).article(slug, anchor), status_code=303, headers=NO_STORE, cookies=_cookies(request, locale_of(request)))


@get("/contact", sync_to_thread=False)
def contact(request: Request, state: State, q: Annotated[str, Parameter(max_length=5000)] = "") -> Template:
    """The ticket form, prefilled with what the visitor searched for."""
    session_of(request)
    q = " ".join(q.split())[:2000]
    values = {"subject": q[:120], "description": q, "query": q}
    return contact_form(request, state, values, {}, 200)


def contact_form(request: Request, state: State, values: dict, errors: dict, status: int) -> Template:
    locale = locale_of(request)
    categories = sorted(state["desk"].categories().keys(), key=lambda c: i18n.category_name(c, locale))
    return page(request, "contact.html", locale, status=status, values=values, errors=errors, categories=categories)


@post("/contact", sync_to_thread=True)
def submit_contact(request: Request, state: State,
                   data: URLEncodedBody[ContactForm]) -> Template | Redirect:
    """Create a ticket; invalid fields re-render the form with the visitor's values (422)."""
    values = {**{k: getattr(data, k) for k in CONTACT_FIELDS}, "query": data.q[:2000]}
    fields = {"name": data.name, "email": data.email, "subject": data.subject, "body": data.description,
              "category": data.category, "website": data.website, "session": session_of(request),
              "locale": locale_of(request)}
    try:
        ticket = create_ticket(state["db"], state["settings"], fields, client_ip(request), limiter=state["limiter"])
    except ValidationError as exc:
        locale = locale_of(request)
        errors = {FORM_KEYS.get(e["key"], e["key"]): i18n.field_error(e["message"], locale) for e in exc.errors}
        return contact_form(request, state, values, errors, 422)
    return Redirect(path=urls_of(request).contact_thanks(ticket["id"]), status_code=303,
                    headers=NO_STORE, cookies=_cookies(request, locale_of(request)))


@get("/contact/thanks", sync_to_thread=False)
def contact_thanks(request: Request, id: Short = "") -> Template:
    """The confirmation after a ticket was created, with its number."""
    return page(request, "thanks.html", locale_of(request), ticket_id=id if TICKET_ID.match(id) else "")


def error_page(request: Request, status: int, title: str, detail: str, headers=None) -> Template:
    """The HTML error page for every portal error (404 included)."""
    try:
        locale = locale_of(request)
    except Exception:  # an error page must render even when the app state is incomplete
        locale = "en"
    title = i18n.TITLES.get(locale, {}).get(status, title)
    return Template(
        template_name="error.html",
        context=context(request, locale, status=status, title=title, detail=detail),
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
        media_type=MediaType.HTML,
    )


ROUTES: list = [
    home, category, article, article_feedback, search, go, contact, submit_contact, contact_thanks,
    create_static_files_router(path="/static", directories=[STATIC], name="portal-static",
                               cache_control=CacheControlHeader(public=True, max_age=300)),
]
