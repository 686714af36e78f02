"""Staff pages: login, the writers' gap board, the owners' dashboard, CSV/SVG/JSON exports.

Pages under /admin redirect anonymous visitors to the login form (303); the JSON under
/api/v1/admin answers 401. Writers see the gap board, owners see it and the dashboard. Every
POST form carries the session's csrf_token (403 without it).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from typing import Any

from anyio import to_thread
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from kb.clock import iso
from kb.errors import AuthError, InvalidQueryError, NotFoundError, ValidationError
from kb.insight import board, charts, gaps, stats
from kb.insight.board import ReplayRequiredError
from kb.settings import Settings
from kb.staff import auth
from kb.staff.auth import COOKIE, LOGIN_COOKIE, Staff
from kb.storage import audit
from kb.urls import Urls, local_path
from kb.web.api import PROBLEMS
from kb.web.client import client_ip, cookie_name

log = logging.getLogger("kb.admin")
FORMULA = ("=", "+", "-", "@", "\t", "\r")
StaffDep = NamedDependency[Staff]
Form = NamedDependency[dict[str, str]]
Query = FromQuery[str | None]
NO_STORE = {"Cache-Control": "no-store"}
SVG_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'", **NO_STORE}


# -- identity -----------------------------------------------------------------------------------


def _staff(request: Request, state: State) -> Staff | None:
    return auth.load_session(state["db"], state["settings"], _cookie(request, COOKIE))


def any_staff(request: Request, state: State) -> Staff:
    """Writers and owners."""
    return auth.require_role(_staff(request, state), auth.ROLES)


def owner_only(request: Request, state: State) -> Staff:
    """Owners."""
    return auth.require_role(_staff(request, state), ("owner",))


async def posted(request: Request, staff: StaffDep) -> dict[str, str]:
    """The form fields of a staff POST, after checking its CSRF token."""
    form = await request.form()
    data = {k: str(v) for k, v in form.items()}
    auth.check_csrf(staff.csrf, data.get("csrf_token"))
    return data


def to_login(request: Request, exc: AuthError) -> Response:
    """Anonymous visitors of a page go to the login form, then back."""
    return Redirect(_urls(request).login(_safe_next(request.url.path)), status_code=303)


def _cookie(request: Request, name: str) -> str | None:
    return request.cookies.get(cookie_name(request.app.state["settings"], name))


def _urls(request: Request) -> Urls:
    return request.app.state["settings"].urls


def _page(name: str, staff: Staff, *, status_code: int = 200, **context: Any) -> Template:
    """A staff page: English, never cached, with the staff member and their CSRF token."""
    return Template(template_name=f"admin/{name}.html", status_code=status_code, headers=NO_STORE,
                    context={"staff": staff, "csrf": staff.csrf, "locale": "en", **context})


def _safe_next(value: str | None) -> str:
    """Where to go after logging in: a path under /admin on this site, nothing else."""
    return local_path(value, default="/admin", prefix="/admin")


# -- login --------------------------------------------------------------------------------------


@get("/login", sync_to_thread=True)
def login_form(request: Request, state: State, next: FromQuery[str] = "/admin") -> Template | Redirect:
    """The login form (its CSRF token is bound to a short-lived nonce cookie)."""
    if _staff(request, state):
        return Redirect(_safe_next(next), status_code=303)
    cookie, token = auth.login_nonce(state["db"], state["settings"])
    return _login_page(state, token, _safe_next(next), "", 200, cookie)


def _login_page(state: State, token: str, next: str, error: str, status: int, nonce: str) -> Template:
    settings = state["settings"]
    # path=/ (not /admin): the __Host- prefix that secure cookies carry requires it
    cookies = [Cookie(key=cookie_name(settings, LOGIN_COOKIE), value=nonce, path="/", httponly=True,
                      samesite="strict", secure=settings.secure_cookies, max_age=3600)]
    return Template(template_name="admin/login.html", status_code=status, cookies=cookies, headers=NO_STORE,
                    context={"csrf": token, "next": next, "error": error, "locale": "en"})


@post("/login")
async def login(request: Request, state: State) -> Template | Redirect:
    """Check the credentials; on success issue a brand-new session (no fixation)."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    settings, nonce = state["settings"], _cookie(request, LOGIN_COOKIE)
    auth.check_csrf(await to_thread.run_sync(auth.login_token, state["db"], settings, nonce), form.get("csrf_token"))
    try:
        user_id = await to_thread.run_sync(auth.authenticate, state["db"], settings, state["limiter"],
                                           form.get("email", ""), form.get("password", ""), client_ip(request))
    except auth.LoginError as exc:
        return _login_page(state, form["csrf_token"], _safe_next(form.get("next")), exc.message, 401, nonce or "")
    value = await to_thread.run_sync(auth.start_session, state["db"], settings, user_id, _cookie(request, COOKIE))
    return Redirect(_safe_next(form.get("next")), status_code=303,
                    cookies=[_session_cookie(settings, value), _expired(settings, LOGIN_COOKIE)])


def _expired(settings: Settings, name: str) -> Cookie:
    """Deletes a cookie; with the same Secure flag and path, or a browser keeps a __Host- cookie."""
    return Cookie(key=cookie_name(settings, name), value="", path="/", max_age=0, expires=0, httponly=True,
                  secure=settings.secure_cookies, samesite="lax")


def _session_cookie(settings: Settings, value: str) -> Cookie:
    return Cookie(key=cookie_name(settings, COOKIE), value=value, path="/", httponly=True, samesite="lax",
                  secure=settings.secure_cookies, max_age=settings.admin_session_hours * 3600)


@post("/logout", sync_to_thread=True, dependencies={"fields": Provide(posted)})
def logout(request: Request, state: State, staff: StaffDep, fields: Form) -> Redirect:
    """End the session server-side and drop the cookie."""
    auth.end_session(state["db"], state["settings"], _cookie(request, COOKIE))
    return Redirect(_urls(request).login(), status_code=303, cookies=[_expired(state["settings"], COOKIE)])


@get("/", sync_to_thread=False)
def home(request: Request, staff: StaffDep) -> Redirect:
    """Owners land on the dashboard, writers on the gap board."""
    urls = _urls(request)
    return Redirect(urls.dashboard() if staff.is_owner else urls.gaps(), status_code=303)


# -- gap board ----------------------------------------------------------------------------------


@get("/gaps", sync_to_thread=True)
def gap_board(state: State, staff: StaffDep, locale: Query = None, status: Query = None) -> Template:
    """Gaps ranked by impact, filterable by locale and status."""
    settings = state["settings"]
    locale, status = _gap_filters(settings.locales, locale, status)
    items = board.list_gaps(state["db"], locale=locale, status=status)
    return _page("gaps", staff, gaps=[g.as_dict() for g in items], filter_locale=locale or "",
                 filter_status=status or "", statuses=gaps.STATUSES, locales=settings.locales,
                 refreshed=iso(gaps.last_refresh(state["db"])), half_life=gaps.HALF_LIFE_DAYS,
                 min_misses=settings.gap_min_misses)


def _gap_filters(locales: tuple[str, ...], locale: str | None, status: str | None) -> tuple[str | None, str | None]:
    """The board's filters, empty meaning all; an unknown value is a 400 naming the field."""
    if locale and locale not in locales:
        raise InvalidQueryError(f"Unknown locale {locale[:40]!r}: one of {', '.join(locales)}.", field="locale")
    if status and status not in gaps.STATUSES:
        raise InvalidQueryError(f"Unknown status {status[:40]!r}: one of {', '.join(gaps.STATUSES)}.", field="status")
    return locale or None, status or None


@post("/gaps/refresh", sync_to_thread=True, dependencies={"fields": Provide(posted)})
def gap_refresh(state: State, staff: StaffDep, fields: Form) -> Redirect:
    """Recompute the gaps now."""
    gaps.refresh_gaps(state["db"], state["settings"], state["desk"])
    return Redirect(state["settings"].urls.gaps(), status_code=303)


def _gap_page(state: State, staff: Staff, gap_id: int, error: str = "", status_code: int = 200) -> Template:
    db = state["db"]
    gap = board.get_gap(db, gap_id)
    return _page("gap", staff, status_code=status_code, gap=gap.as_dict(), error=error, kinds=gaps.KINDS,
                 statuses=gaps.STATUSES, half_life=gaps.HALF_LIFE_DAYS, replay_top=board.REPLAY_TOP,
                 examples=[{**m.__dict__, "when": iso(m.ts)} for m in board.examples(db, gap_id)])


@get("/gaps/{gap_id:int}", sync_to_thread=True)
def gap_detail(state: State, staff: StaffDep, gap_id: FromPath[int]) -> Template:
    """One gap: examples, closest article, link, replay and status."""
    return _gap_page(state, staff, gap_id)


@post("/gaps/{gap_id:int}/{action:str}", sync_to_thread=True, dependencies={"fields": Provide(posted)})
def gap_action(
    state: State, staff: StaffDep, gap_id: FromPath[int], action: FromPath[str], fields: Form,
) -> Template | Redirect:
    """link (slug), replay, or status (open, planned, resolved = accept, dismissed)."""
    db, desk = state["db"], state["desk"]
    actions = {"link": lambda: board.link_gap(db, desk, gap_id, fields.get("slug", "")),
               "replay": lambda: board.replay_gap(db, desk, gap_id),
               "status": lambda: board.set_status(db, gap_id, fields.get("status", ""))}
    if action not in actions:
        raise NotFoundError(f"No action {action!r}.")
    try:
        gap = actions[action]()
    except (ValidationError, ReplayRequiredError) as exc:
        return _gap_page(state, staff, gap_id, exc.message, exc.status_code)
    detail = {"link": "", "replay": f"{gap.replay_before} -> {gap.replay_after} of {gap.replay_total}",
              "status": gap.status}[action]
    audit.record(db, audit.Actor(staff.user_id, staff.email), f"gap-{action}", article=gap.linked_slug, gap_id=gap_id,
                 detail=detail)
    return Redirect(state["settings"].urls.gap(gap_id), status_code=303)


@get("/gaps/{gap_id:int}/trend.svg", sync_to_thread=True)
def gap_trend(state: State, staff: StaffDep, gap_id: FromPath[int]) -> Response:
    """The gap's misses per day over 30 days (SVG sparkline)."""
    board.get_gap(state["db"], gap_id)
    counts = [n for _, n in board.trend(state["db"], gap_id)]
    return Response(charts.sparkline(counts), media_type="image/svg+xml", headers=SVG_HEADERS)


@get("/gaps/export.csv", sync_to_thread=True)
def gaps_csv(state: State, staff: StaffDep) -> Response:
    """The whole board as CSV."""
    header, rows = board.export_rows(board.list_gaps(state["db"]))
    return _csv("gaps", header, rows)


def csv_text(header: list[str], rows: list[list]) -> str:
    """CSV with formula injection defused: text cells starting with = + - @ tab or CR get a quote."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["'" + c if isinstance(c, str) and c.startswith(FORMULA) else c for c in row])
    return out.getvalue()


def _csv(name: str, header: list[str], rows: list[list]) -> Response:
    return Response(csv_text(header, rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"', "Cache-Control": "no-store"})


# -- dashboard ----------------------------------------------------------------------------------


def _stats(state: State, since: str | None, until: str | None) -> stats.Stats:
    return stats.compute(state["db"], state["settings"], stats.period(since or None, until or None), time.time())


@get("/dashboard", sync_to_thread=True)
def dashboard(state: State, owner: StaffDep, since: Query = None, until: Query = None) -> Template:
    """Deflection figures with their definitions, charts and tables for a date range."""
    result = _stats(state, since, until)
    period = {"since": result.period.start.isoformat(), "until": result.period.end.isoformat()}
    unit, periods = charts.per_period(result.daily)  # as daily.svg draws them
    return _page("dashboard", owner, s=result.as_dict(), period=period, tables=list(stats.tables(result)),
                 labels=stats.LABELS, unit=unit, periods=periods, refused=_refused(state))


@get("/dashboard/export/{name:str}", sync_to_thread=True)
def dashboard_csv(
    state: State, owner: StaffDep, name: FromPath[str], since: Query = None, until: Query = None,
) -> Response:
    """One dashboard table as CSV: figures, daily, funnel, top_requests or articles."""
    table = stats.tables(_stats(state, since, until)).get(name.removesuffix(".csv"))
    if table is None or not name.endswith(".csv"):
        raise NotFoundError(f"No table {name!r}.")
    return _csv(name.removesuffix(".csv"), *table)


@get("/charts/{name:str}", sync_to_thread=True)
def chart(state: State, owner: StaffDep, name: FromPath[str], since: Query = None, until: Query = None) -> Response:
    """daily.svg or funnel.svg for the date range."""
    draw = {"daily.svg": charts.daily, "funnel.svg": charts.funnel}.get(name)
    if draw is None:
        raise NotFoundError(f"No chart {name!r}.")
    return Response(draw(_stats(state, since, until)), media_type="image/svg+xml", headers=SVG_HEADERS)


# -- JSON ---------------------------------------------------------------------------------------


@get("/stats", sync_to_thread=True, responses=PROBLEMS, cache_control=None)
def api_stats(state: State, owner: StaffDep, since: Query = None, until: Query = None) -> Response:
    """Every dashboard figure, with definitions, as JSON."""
    return Response(_stats(state, since, until).as_dict(), headers={"Cache-Control": "no-store"})


def _refused(state: State) -> dict[str, Any]:
    """Origins the API refused in this process (kb/web/edge.py RefusedOrigins)."""
    refused = state["refused_origins"]
    return {"origins": [{**vars(r), "first": iso(r.first), "last": iso(r.last)} for r in refused.items()],
            "others": refused.others, "process_started": iso(refused.started)}


@get("/origins", sync_to_thread=False, responses=PROBLEMS, cache_control=None)
def api_origins(state: State, owner: StaffDep) -> Response:
    """Origins the API refused since this server process started: add them to KB_CORS_ORIGINS."""
    return Response(_refused(state), headers={"Cache-Control": "no-store"})


@get("/gaps", sync_to_thread=True, responses=PROBLEMS, cache_control=None)
def api_gaps(state: State, staff: StaffDep, locale: Query = None, status: Query = None) -> Response:
    """The gap board as JSON, ranked by impact."""
    items = board.list_gaps(state["db"], locale=locale or None, status=status or None)
    body = {"refreshed": iso(gaps.last_refresh(state["db"])), "gaps": [g.as_dict() for g in items]}
    return Response(body, headers={"Cache-Control": "no-store"})


_DEPS = {"staff": Provide(any_staff, sync_to_thread=True), "owner": Provide(owner_only, sync_to_thread=True)}
PAGES = [login_form, login, logout, home, gap_board, gap_refresh, gap_detail, gap_action, gap_trend, gaps_csv,
         dashboard, dashboard_csv, chart]
ROUTES = [
    Router(path="/admin", include_in_schema=False, route_handlers=PAGES, dependencies=_DEPS,
           exception_handlers={AuthError: to_login}),
    Router(path="/api/v1/admin", route_handlers=[api_stats, api_gaps, api_origins], dependencies=_DEPS),
]

__all__ = ["ROUTES", "csv_text"]
