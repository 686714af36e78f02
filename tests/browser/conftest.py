"""Fixtures for the widget's browser tests.

- ``kb_server``: a real ``python -m kb serve`` on a free port, with a temporary data directory
  indexed from the bundled articles, the demo site's origin in its CORS allow-list and the
  ``webhook`` receiver as its ticket sink.
- ``demo_server``: a plain static HTTP server on another port (so another origin) serving host
  pages that load ``{kb_server}/widget/kb-widget.js``.
- ``page``: a fresh Chromium context per test (so a fresh sessionStorage, hence a new widget
  session); the test fails if anything is thrown into the host page.

Chromium is Debian's (``apt-get install chromium``), driven by Python playwright. Without it the
tests fail when ``CI`` is set and skip, saying why, otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from servers import committed, start_server, stop_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
WEBHOOK_SECRET = "browser-test-secret"
# The first start indexes every article with the real model: minutes on a busy CI machine.
SERVER_TIMEOUT = float(os.environ.get("KB_BROWSER_TIMEOUT", "600"))


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy and return its value; fail the test with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name=f"http-{server.server_port}", daemon=True)
    thread.start()
    return thread


# --- the host site (another origin) -----------------------------------------------------------


@dataclass
class DemoSite:
    """Host pages on their own origin: path -> (html, extra response headers)."""

    server: ThreadingHTTPServer
    pages: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    kb: str = ""

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def add(self, path: str, html: str, headers: dict[str, str] | None = None) -> str:
        """Serve `html` at `path` ("{kb}" is replaced by the kb origin) and return its URL."""
        self.pages[path] = (html.replace("{kb}", self.kb), headers or {})
        return self.origin + path

    def url(self, path: str) -> str:
        return self.origin + path


def _demo_handler(site_ref: list[DemoSite]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            site = site_ref[0]
            path = self.path.split("?", 1)[0]
            html, headers = site.pages.get(path, ("<!doctype html><title>host</title><p>host page</p>", {}))
            status = 200 if path in site.pages or path.startswith("/submitted") else 404
            body = html.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

    return Handler


@pytest.fixture(scope="session")
def demo_site() -> Iterator[DemoSite]:
    """The host site's server, bound first so that kb can allow its origin."""
    ref: list[DemoSite] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _demo_handler(ref))
    ref.append(DemoSite(server))
    _serve(server)
    yield ref[0]
    server.shutdown()
    server.server_close()


LAUNCHER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Intranet</title></head>
<body><h1>Intranet home</h1><p>Some host content.</p>
<script src="{kb}/widget/kb-widget.js" data-feedback-delay="200" async></script>
</body></html>"""

INLINE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Support</title></head>
<body><h1>Support</h1>
<kb-widget feedback-delay="200"></kb-widget>
<script src="{kb}/widget/kb-widget.js" async></script>
</body></html>"""

HOSTILE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hostile</title>
<style>* { all: unset } kb-widget { color: red; font: 40px serif; }</style></head>
<body>
<form id="host-form" action="/submitted" method="get">
  <input name="host-field" value="x">
  <kb-widget feedback-delay="200"></kb-widget>
  <button id="host-submit">Host submit</button>
</form>
<script>
  window.hostSubmits = 0;
  document.getElementById('host-form').addEventListener('submit', function () { window.hostSubmits++; });
</script>
<script src="{kb}/widget/kb-widget.js"></script>
</body></html>"""


@pytest.fixture(scope="session")
def demo_server(demo_site: DemoSite, kb_server: str) -> DemoSite:
    """The host site with its standard pages: / (launcher), /inline, /hostile."""
    demo_site.kb = kb_server
    demo_site.add("/", LAUNCHER_PAGE)
    demo_site.add("/inline", INLINE_PAGE)
    demo_site.add("/hostile", HOSTILE_PAGE)
    return demo_site


# --- the ticket webhook receiver ----------------------------------------------------------------


@dataclass
class Webhook:
    """A local receiver that records every POST (headers and JSON body)."""

    server: ThreadingHTTPServer
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        """The first delivery whose JSON body satisfies predicate."""
        return wait_until(lambda: next((d for d in list(self.received) if predicate(d["json"])), None),
                          timeout, "a webhook delivery")

    @staticmethod
    def signature_ok(delivery: dict[str, Any]) -> bool:
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), delivery["raw"], hashlib.sha256).hexdigest()
        return hmac.compare_digest(delivery["headers"].get("x-kb-signature", ""), expected)


@pytest.fixture(scope="session")
def webhook() -> Iterator[Webhook]:
    ref: list[Webhook] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            ref[0].received.append({"path": self.path, "raw": raw, "json": body,
                                    "headers": {k.lower(): v for k, v in self.headers.items()}})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ref.append(Webhook(server))
    _serve(server)
    yield ref[0]
    server.shutdown()
    server.server_close()


# --- the real kb server -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kb_data(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kb server's data directory (kb.db is the SQLite database the tests inspect).

    It starts as a copy of the session's `indexed_dir` (tests/conftest.py), so the index is
    built once per run; without that fixture `kb serve` indexes the articles on its first start.
    KB_BROWSER_DATA names a directory to keep between runs instead (the tests only look at rows
    of their own sessions).
    """
    keep = os.environ.get("KB_BROWSER_DATA")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        return Path(keep).resolve()
    data = tmp_path_factory.mktemp("widget-browser") / "data"
    try:
        indexed = request.getfixturevalue("indexed_dir")
    except pytest.FixtureLookupError:
        data.mkdir()
    else:
        shutil.copytree(indexed, data, symlinks=True)
    return data


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


@pytest.fixture(scope="session")
def kb_server(kb_data: Path, demo_site: DemoSite, webhook: Webhook) -> Iterator[str]:
    """Base URL of a running `kb serve` (indexes the bundled articles on its first start)."""
    env = dict(
        KB_LOG_LEVEL="info",
        KB_CONFIG=str(kb_data / "no-kb.toml"),  # never pick up a developer's kb.toml
        KB_CORS_ORIGINS=demo_site.origin,
        KB_WEBHOOK_URL=webhook.url,
        KB_WEBHOOK_SECRET=WEBHOOK_SECRET,
        KB_OUTBOX_BACKOFF_SECONDS="0.5",
    )
    try:
        proc, url = start_server(kb_data, env, timeout=SERVER_TIMEOUT, inherit_kb=False)
    except RuntimeError as exc:
        pytest.fail(f"kb serve did not become healthy: {exc}")
    try:
        _get(url + "/api/v1/suggest?q=warm+up&limit=3")  # load lazy parts before timing anything
        yield url
    finally:
        stop_server(proc)


@pytest.fixture
def db(kb_data: Path) -> Callable[[str, tuple], list[Any]]:
    """Queries on what the server has committed to its database, through a fresh engine."""

    def query(sql: str, params: tuple = ()) -> list[Any]:
        return committed(kb_data / "kb.db", sql, params)

    return query


# --- Chromium ------------------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: browser tests must run in CI, not be skipped")
    print(f"\nskipping browser tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def chromium() -> str:
    """Chromium's path, checked before any server starts (autouse fixtures come first)."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        _unavailable("Debian chromium is not installed (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("python playwright is not installed (pip install -e '.[test]')")
    return executable


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context; uncaught errors in the host page fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"errors were thrown into the host page: {errors}"


@pytest.fixture
def shot(page: Any, request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Save a screenshot of the current state as tests/artifacts/<test>-<n>-<state>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    count = [0]

    def save(state: str) -> None:
        count[0] += 1
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{count[0]}-{state}.png"), full_page=True)

    return save
