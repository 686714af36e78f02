"""What every request passes before a handler, and every response on its way out.

- `guard`: the outermost layer (around routing, CORS and the error handler, so it sees 404s and
  preflights too): a Host outside the allow-list (DNS rebinding) gets 400, a path holding
  control characters 404, before anything else runs; every response gets `nosniff`, HTML pages the
  CSP and friends, and staff responses `Cache-Control: no-store`.
- `api_guard`: cross-origin API calls from origins outside the allow-list (403, each origin
  logged once and listed for owners by `RefusedOrigins`), and API bodies that are not JSON (415).
- `KbRequest`: JSON bodies that are not UTF-8 or nest deeper than MAX_JSON_DEPTH are a 400
  before they are decoded (msgspec raises UnicodeDecodeError and RecursionError on them).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, cast

import numpy as np
from litestar import Request, Response
from litestar.exceptions import ClientException
from litestar.types import ASGIApp, Empty, HTTPScope, Message, Receive, Scope, Send

from kb.settings import Settings

log = logging.getLogger("kb.web.edge")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'self'; form-action 'self'"
    ),
}
STAFF_PATHS = ("/admin", "/api/v1/admin")
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
# Deep enough for any body kb accepts (the widget's events nest four levels), far below the
# interpreter's recursion limit that msgspec, json.dumps and the transcript reader all run into.
MAX_JSON_DEPTH = 20
REFUSED_LIMIT = 100  # distinct refused origins remembered; more are only counted
_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def problem(status: int, title: str, detail: str, extra: object = None,
            headers: dict[str, str] | None = None) -> Response:
    """The API's error body (see kb.web.api.Problem)."""
    body: dict[str, Any] = {"status_code": status, "title": title, "detail": detail}
    if extra:
        body["extra"] = extra
    return Response(body, status_code=status, media_type="application/json", headers=headers)


# -- hosts and paths ---------------------------------------------------------------------------


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Host names (lower-case, no port) requests may address; '*' allows any.

    By default the host of KB_BASE_URL and this machine's own names: a page on another name
    (a rebinding DNS entry pointing at this server) gets 400 instead of the help center.
    """
    if settings.allowed_hosts:
        return frozenset(_bare(h) for h in settings.allowed_hosts)
    base = re.sub(r"^[a-z][a-z0-9+.-]*://", "", settings.base_url.strip(), flags=re.I).split("/", 1)[0]
    names = {*LOCAL_NAMES, _bare(settings.host), _bare(base.rsplit("@", 1)[-1])}
    return frozenset(n for n in names if n)


def _bare(host: str) -> str:
    """'Example.com:8000' -> 'example.com', '[::1]:8000' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc


def guard(settings: Settings) -> Callable[[ASGIApp], ASGIApp]:
    """The outermost middleware: Host allow-list, paths with control characters, response headers."""
    hosts = allowed_hosts(settings)

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            host = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
            if "*" not in hosts and _bare(host) not in hosts:
                detail = "This server does not answer to that host name (see KB_ALLOWED_HOSTS)."
                await _refuse(scope, receive, send, problem(400, "Bad request", detail))
                return
            if _CONTROLS.search(scope["path"]):  # "/static/x%00.js" (a 500), "%0d%0a" (a forged log line)
                detail = "No page has a path holding control characters."  # the server decoded %00 into it
                await _refuse(scope, receive, send, problem(404, "Not found", detail))
                return
            await app(scope, receive, _headers(scope["path"], send))

        return middleware

    return factory


async def _refuse(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    await response.to_asgi_response(None, None)(scope, receive, _headers(scope["path"], send))  # type: ignore[arg-type]


def _headers(path: str, send: Send) -> Send:
    """`send`, adding nosniff to every response, the page headers to HTML and no-store to staff paths."""
    staff = any(path == p or path.startswith(p + "/") for p in STAFF_PATHS)

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if not (staff and k.lower() == b"cache-control")]
            names = {k.lower() for k, _ in headers}
            html = next((v for k, v in headers if k.lower() == b"content-type"), b"").startswith(b"text/html")
            for name, value in SECURITY_HEADERS.items():
                key = name.lower().encode()
                if key not in names and (html or name == "X-Content-Type-Options"):
                    headers.append((key, value.encode()))
            if staff:
                headers.append((b"cache-control", b"no-store"))
            message["headers"] = headers
        await send(message)

    return wrapped


# -- the API --------------------------------------------------------------------------------------


@dataclass
class Refusal:
    """One refused origin: how often and when."""

    origin: str
    count: int
    first: float
    last: float


class RefusedOrigins:
    """Thread-safe record of the origins the API refused, kept in memory by each server process.

    A page whose origin is missing from KB_CORS_ORIGINS shows its visitors only "The help desk is
    unreachable", so the operator needs to hear about it. The Origin header is whatever the caller
    sends: the list is bounded and every origin is logged with repr(), so no control character
    reaches the log.
    """

    def __init__(self) -> None:
        self._seen: dict[str, Refusal] = {}
        self._lock = threading.Lock()
        self.started = time.time()
        self.others = 0  # refusals of origins beyond REFUSED_LIMIT

    def note(self, origin: str) -> None:
        """Count a refusal; the first of each origin is logged as a warning."""
        origin, now = origin[:200], time.time()
        with self._lock:
            seen = self._seen.get(origin)
            if seen is not None:
                seen.count += 1
                seen.last = now
                return
            if len(self._seen) >= REFUSED_LIMIT:
                self.others += 1
                return
            self._seen[origin] = Refusal(origin, 1, now, now)
        log.warning("refused API calls from origin %r: add it to KB_CORS_ORIGINS (comma-separated) to let its"
                    " pages use the widget and the API; owners see every refused origin at /api/v1/admin/origins",
                    origin)

    def items(self) -> list[Refusal]:
        """Refused origins, most recent first."""
        with self._lock:
            return sorted((Refusal(**vars(r)) for r in self._seen.values()), key=lambda r: -r.last)


def api_guard(allowed: tuple[str, ...], refused: RefusedOrigins) -> Callable[[ASGIApp], ASGIApp]:
    """Refuse cross-origin API calls from origins outside the allow-list (403, noted in `refused`),
    and API bodies that are not JSON (415)."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/api/"):
                headers = dict(scope.get("headers", []))
                origin = headers.get(b"origin", b"").decode("latin-1")
                host = headers.get(b"host", b"").decode("latin-1")
                same = origin.split("://", 1)[-1] == host
                if origin and not same and "*" not in allowed and origin not in allowed:
                    refused.note(origin)
                    response = problem(403, "Forbidden", f"Origin {origin} is not allowed to use this API.")
                    await response.to_asgi_response(None, None)(scope, receive, send)  # type: ignore[arg-type]
                    return
                ctype = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
                if cast("HTTPScope", scope)["method"] in ("POST", "PUT", "PATCH") and ctype != "application/json":
                    response = problem(415, "Unsupported media type", "Send the body as application/json.")
                    await response.to_asgi_response(None, None)(scope, receive, send)  # type: ignore[arg-type]
                    return
            await app(scope, receive, send)

        return middleware

    return factory


def check_json(body: bytes) -> None:
    """Raise ClientException (400) for a body that is not UTF-8 or nests deeper than MAX_JSON_DEPTH."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientException(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    # Brackets inside strings do not nest: drop the strings, then a running sum of +1/-1 per bracket.
    steps = np.frombuffer(_STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS).translate(_STEPS), dtype=np.int8)
    if steps.size and int(np.cumsum(steps, dtype=np.int32).max()) > MAX_JSON_DEPTH:
        raise ClientException(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")


class KbRequest(Request):
    """Litestar's request, with JSON bodies checked by `check_json` before they are decoded."""

    async def json(self) -> Any:
        if self._json is Empty and self._connection_state.json is Empty:
            check_json(await self.body())
        return await super().json()


__all__ = ["KbRequest", "Refusal", "RefusedOrigins", "api_guard", "allowed_hosts", "check_json", "guard", "problem"]
