"""The Litestar application: lifespan (model, index, database loaded once) and errors; the guards
every request passes are in kb/web/edge.py."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable

from anyio import to_thread
from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.template.config import TemplateConfig

from kb.content.articles import LOCALE, SLUG
from kb.serving.desk import Desk
from kb.logs import ProgressLog
from kb.errors import IndexUnavailableError, KbError, RateLimitedError, ValidationError
from kb.settings import Settings
from kb.storage.database import COMMENT_CHARS, StoreError
from kb.storage.startup import open_database
from kb.storage.limits import RateLimiter
from kb.storage.secrets import INDEX_TOKEN, shared_secret
from kb.tickets.intake import FIELD_CHARS
from kb.web import background, routes
from kb.web.edge import KbRequest, RefusedOrigins, api_guard, guard, problem
from kb.web.pages import error_page

log = logging.getLogger("kb")
HERE = Path(__file__).parent
PUBLISHER_WAIT_SECONDS = 120.0  # a replica started with the publisher waits for its first build
STORE_DOWN = "The database is unavailable right now, so nothing was stored. Please try again in a minute."
STORE_RETRY_SECONDS = 30


def build_services(settings: Settings, embedder=None) -> State:
    """Create the long-lived objects: embedder, database (migrated), desk (index loaded or built)."""
    from kb.content.indexer import index_directory, make_embedder

    embedder = embedder or make_embedder(settings)
    db = open_database(settings)
    desk = Desk(settings, embedder, db)
    if desk.puller is not None:  # a replica: its index comes from the publisher, never from articles
        desk.puller.wait_for_build(PUBLISHER_WAIT_SECONDS)
    try:
        desk.load()
    except IndexUnavailableError as exc:
        if desk.puller is not None:
            raise
        if not settings.articles.is_dir():
            raise
        log.info("%s: indexing the articles in %s now (once; later starts take seconds)", exc, settings.articles)
        progress = ProgressLog(log, "texts embedded")
        summary = index_directory(settings, embedder, on_total=progress.start, progress=progress.advance)
        for error in summary.skipped:
            log.warning("skipped %s", error.message)
        log.info("indexed %d articles (%d passages) in %.1f s, %d files skipped", summary.articles,
                 summary.passages, summary.seconds, len(summary.skipped))
        desk.load()
    if settings.publish_index:
        shared_secret(db, INDEX_TOKEN)  # read now: replicas keep pulling while the database restarts
    return State({"settings": settings, "db": db, "desk": desk, "limiter": RateLimiter(db),
                  **editor_services(settings, embedder)})


def editor_services(settings: Settings, embedder) -> dict:
    """The article editor over the articles directory, and the background rebuild its saves start
    (on a replica, an editor that refuses: articles are edited on the publisher)."""
    from kb.content.editor import Editor, Rebuilder, locked_build
    from kb.content.history import History

    rebuilder = Rebuilder(locked_build(settings, embedder))
    if settings.index_source:  # a replica: the articles and their history are on the publisher
        return {"editor": Editor(settings.articles, publisher=settings.index_source), "rebuilder": rebuilder}
    history = History(settings.articles) if settings.articles_git else None
    return {"editor": Editor(settings.articles, history, rebuilder.request), "rebuilder": rebuilder}


def _lifespan(settings: Settings, services: State | None, run_background: bool) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        state = services if services is not None else await to_thread.run_sync(build_services, settings)
        for key, value in state.dict().items():
            app.state[key] = value
        tasks = [asyncio.create_task(_poll_index(app.state["desk"], settings.index_poll_seconds))]
        log.info("kb is ready: %d articles; help center at %s", len(app.state["desk"].library.articles),
                 settings.base_url or f"http://{settings.host}:{settings.port}/")
        if run_background:
            tasks += background.start(app)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await to_thread.run_sync(app.state["limiter"].close)  # its last counts reach the other replicas

    return lifespan


async def _poll_index(desk: Desk, seconds: float) -> None:
    """Swap in rebuilt (or, on a replica, newly published) indexes without a restart; the pull
    and the load run off the event loop."""
    while True:
        await asyncio.sleep(seconds)
        try:
            if await to_thread.run_sync(desk.refresh, abandon_on_cancel=True):
                log.info("index reloaded: %s", desk.library.version)
        except KbError as exc:  # keep serving the old index
            log.error("index reload failed: %s", exc.message)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def handle_error(request: Request, exc: Exception) -> Response:
    """One hook renders every error: problem JSON for the API, an HTML page for the portal."""
    headers = {}
    extra: object = None
    if isinstance(exc, StoreError):  # the driver's words (hosts, socket paths) stay in the log
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
        status, detail = exc.status_code, STORE_DOWN
        headers["Retry-After"] = str(STORE_RETRY_SECONDS)
    elif isinstance(exc, KbError):
        status, detail = exc.status_code, exc.message
        if isinstance(exc, ValidationError):
            extra = exc.errors
        elif exc.extra.get("field"):
            extra = [{"key": exc.extra["field"], "message": detail}]
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, HTTPException):
        status, detail = exc.status_code, exc.detail
        extra = getattr(exc, "extra", None)
        if isinstance(exc, ValidationException) and request.method == "POST":
            status = 422  # a well-formed body whose fields are wrong
        if isinstance(exc, ValidationException) and isinstance(extra, list):
            extra = [{"key": e.get("key", ""), "message": e.get("message", "")} for e in extra if isinstance(e, dict)]
        headers.update(getattr(exc, "headers", None) or {})
    else:
        log.exception("unhandled error on %r", request.url.path)  # repr: a path never forges log lines
        status, detail = 500, "Something went wrong on our side."
    title = _TITLES.get(status, "Error")
    if _is_api(request) or "text/html" not in request.headers.get("accept", "text/html"):
        return problem(status, title, detail, extra, headers)
    return error_page(request, status, title, detail, headers)


_TITLES = {400: "Bad request", 401: "Login required", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 413: "Request too large", 415: "Unsupported media type",
           422: "Invalid input", 429: "Too many requests", 500: "Server error", 503: "Unavailable"}


def _template_globals(engine: JinjaTemplateEngine, settings: Settings) -> None:
    """What every template may use: `urls` builds every link (kb/urls.py)."""
    engine.engine.globals["urls"] = settings.urls
    engine.engine.globals["contact_mode"] = settings.contact_mode
    engine.engine.globals["limits"] = {"query": settings.max_query_chars, "comment": COMMENT_CHARS, **FIELD_CHARS}
    # HTML pattern attributes: the same expressions the server validates with, without anchors.
    engine.engine.globals["formats"] = {"slug": SLUG.pattern.strip("^$"), "locale": LOCALE.pattern.strip("^$")}


def create_app(
    settings: Settings,
    services: State | None = None,
    background_work: bool = True,
) -> Litestar:
    """The whole app; pass prebuilt services (tests) or let the lifespan build them.

    `background_work` runs ticket delivery and the gap refresh from the lifespan (kb/web/background.py).
    """
    cors = CORSConfig(
        allow_origins=list(settings.cors_origins) or [],
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type"],
        max_age=3600,
    ) if settings.cors_origins else None
    handlers = list(routes.handlers())
    refused = RefusedOrigins()
    app = Litestar(
        route_handlers=handlers,
        lifespan=[_lifespan(settings, services, background_work)],
        exception_handlers={Exception: handle_error},
        cors_config=cors,
        middleware=[api_guard(settings.cors_origins, refused)],
        request_class=KbRequest,
        template_config=TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine,
                                       engine_callback=lambda engine: _template_globals(engine, settings)),
        openapi_config=OpenAPIConfig(title="kb help center API", version="1.0.0", path="/schema"),
        state=State({"settings": settings, "refused_origins": refused}),
        request_max_body_size=256 * 1024,
        logging_config=None,  # kb.logs configures logging once for the whole process
        debug=False,
    )
    # Outside routing, CORS and the error handler: unknown paths and preflights are guarded too.
    app.asgi_handler = guard(settings)(app.asgi_handler)
    return app


__all__ = ["create_app", "build_services", "handle_error", "problem", "NotFoundException"]
