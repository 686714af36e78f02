"""The Litestar application: lifespan (model, index, database loaded once), errors, security."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable, cast

from anyio import to_thread
from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from kb.serving.desk import Desk
from kb.logs import ProgressLog
from kb.errors import IndexUnavailableError, KbError, RateLimitedError, ValidationError
from kb.settings import Settings
from kb.storage.database import COMMENT_CHARS
from kb.storage.startup import open_database
from kb.storage.limits import RateLimiter
from kb.tickets.intake import FIELD_CHARS
from kb.web import background, routes
from kb.web.pages import error_page

log = logging.getLogger("kb")
HERE = Path(__file__).parent

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'self'; form-action 'self'"
    ),
}


def build_services(settings: Settings, embedder=None) -> State:
    """Create the long-lived objects: embedder, database (migrated), desk (index loaded or built)."""
    from kb.content.indexer import index_directory, make_embedder

    embedder = embedder or make_embedder(settings)
    db = open_database(settings)
    desk = Desk(settings, embedder, db)
    try:
        desk.load()
    except IndexUnavailableError as exc:
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
    return State({"settings": settings, "db": db, "desk": desk, "limiter": RateLimiter(db)})


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
    """Swap in rebuilt indexes without a restart; the load runs off the event loop."""
    while True:
        await asyncio.sleep(seconds)
        try:
            if await to_thread.run_sync(desk.reload_if_changed):
                log.info("index reloaded: %s", desk.library.version)
        except KbError as exc:  # keep serving the old index
            log.error("index reload failed: %s", exc.message)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def problem(status: int, title: str, detail: str, extra: object = None, headers=None) -> Response:
    body = {"status_code": status, "title": title, "detail": detail}
    if extra:
        body["extra"] = extra
    return Response(body, status_code=status, media_type="application/json", headers=headers)  # the schema documents errors as JSON


def handle_error(request: Request, exc: Exception) -> Response:
    """One hook renders every error: problem JSON for the API, an HTML page for the portal."""
    headers = {}
    extra: object = None
    if isinstance(exc, KbError):
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
        log.exception("unhandled error on %s", request.url.path)
        status, detail = 500, "Something went wrong on our side."
    title = _TITLES.get(status, "Error")
    if _is_api(request) or "text/html" not in request.headers.get("accept", "text/html"):
        return problem(status, title, detail, extra, headers)
    # A 404 for an unknown path never reaches the middleware stack: add the headers here too.
    return error_page(request, status, title, detail, {**SECURITY_HEADERS, **headers})


_TITLES = {400: "Bad request", 401: "Login required", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 413: "Request too large", 415: "Unsupported media type",
           422: "Invalid input", 429: "Too many requests", 500: "Server error", 503: "Unavailable"}


def security_headers(app: ASGIApp) -> ASGIApp:
    """Add the security headers to every HTML page, and nosniff to everything."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                for name, value in SECURITY_HEADERS.items():
                    key = name.lower().encode()
                    if key in names:
                        continue
                    if name == "X-Content-Type-Options" or ctype.startswith(b"text/html"):
                        headers.append((key, value.encode()))
                message["headers"] = headers
            await send(message)

        await app(scope, receive, send_wrapper)

    return middleware


def api_guard(allowed: tuple[str, ...]) -> Callable[[ASGIApp], ASGIApp]:
    """Refuse cross-origin API calls from origins outside the allow-list (403), and API bodies
    that are not JSON (415)."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/api/"):
                headers = dict(scope.get("headers", []))
                origin = headers.get(b"origin", b"").decode()
                host = headers.get(b"host", b"").decode()
                same = origin.split("://", 1)[-1] == host
                if origin and not same and "*" not in allowed and origin not in allowed:
                    response = problem(403, "Forbidden", f"Origin {origin} is not allowed to use this API.")
                    await response.to_asgi_response(None, None)(scope, receive, send)  # type: ignore[arg-type]
                    return
                ctype = headers.get(b"content-type", b"").decode().split(";")[0].strip().lower()
                if cast("HTTPScope", scope)["method"] in ("POST", "PUT", "PATCH") and ctype != "application/json":
                    response = problem(415, "Unsupported media type", "Send the body as application/json.")
                    await response.to_asgi_response(None, None)(scope, receive, send)  # type: ignore[arg-type]
                    return
            await app(scope, receive, send)

        return middleware

    return factory


def _template_globals(engine: JinjaTemplateEngine, settings: Settings) -> None:
    """What every template may use: `urls` builds every link (kb/urls.py)."""
    engine.engine.globals["urls"] = settings.urls
    engine.engine.globals["limits"] = {"query": settings.max_query_chars, "comment": COMMENT_CHARS, **FIELD_CHARS}


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
    return Litestar(
        route_handlers=handlers,
        lifespan=[_lifespan(settings, services, background_work)],
        exception_handlers={Exception: handle_error},
        cors_config=cors,
        middleware=[security_headers, api_guard(settings.cors_origins)],
        template_config=TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine,
                                       engine_callback=lambda engine: _template_globals(engine, settings)),
        openapi_config=OpenAPIConfig(title="kb help center API", version="1.0.0", path="/schema"),
        state=State({"settings": settings}),
        request_max_body_size=256 * 1024,
        logging_config=None,  # kb.logs configures logging once for the whole process
        debug=False,
    )


__all__ = ["create_app", "build_services", "handle_error", "problem", "NotFoundException"]
