"""Security headers, CORS allow-list, path traversal in slugs and static paths."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/", "/search?q=vpn", "/articles/vpn-connect", "/contact", "/nope-404"])
def test_portal_pages_send_security_headers(client, path):
    r = client.get(path, headers={"accept": "text/html"})
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_api_responses_are_nosniff(client):
    assert client.get("/api/v1/healthz").headers["x-content-type-options"] == "nosniff"


def test_cors_preflight_only_for_allowed_origins(client):
    ok = client.options("/api/v1/tickets", headers={"origin": "http://allowed.example",
                                                    "access-control-request-method": "POST",
                                                    "access-control-request-headers": "content-type"})
    assert ok.headers.get("access-control-allow-origin") == "http://allowed.example"
    bad = client.options("/api/v1/tickets", headers={"origin": "http://evil.example",
                                                     "access-control-request-method": "POST"})
    assert bad.headers.get("access-control-allow-origin") is None
    post = client.post("/api/v1/tickets", json={}, headers={"origin": "http://evil.example"})
    assert post.status_code == 403


@pytest.mark.parametrize("path", [
    "/static/../kb.db", "/static/..%2f..%2fkb.db", "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/widget/../pyproject.toml", "/articles/..%2F..%2Fetc%2Fpasswd", "/articles/%2e%2e",
    "/categories/..%2f..%2fetc",
])
def test_path_traversal_is_refused(client, path):
    r = client.get(path)
    assert r.status_code in (400, 404)
    assert "[project]" not in r.text and "SQLite format" not in r.text and "root:" not in r.text


# -- issue 17 ---------------------------------------------------------------------------------
# Each test below is written from the description of an attack that worked on loopback.

import re  # noqa: E402
from urllib.parse import urljoin, urlsplit  # noqa: E402

from hypothesis import example, given, settings as hypothesis_settings, strategies as st  # noqa: E402
from litestar.testing import TestClient  # noqa: E402

from kb.staff import auth  # noqa: E402
from servers import ROOT, TEST_HOST  # noqa: E402

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def edge(tmp_path_factory, indexed_dir, embedder):
    """One app for the tests that only send requests (built once: each `client` builds its own)."""
    import shutil

    from kb.settings import Settings
    from kb.web.app import build_services, create_app

    data = tmp_path_factory.mktemp("edge") / "data"
    shutil.copytree(indexed_dir, data, symlinks=True)
    settings = Settings.load(environ={}, articles=ROOT / "articles", data=data, gap_refresh_minutes=0,
                             allowed_hosts=(TEST_HOST,), rate_suggest_per_minute=0, rate_tickets_per_hour=0)
    services = build_services(settings, embedder=embedder)
    auth.add_user(services["db"], "owner@example.com", "owner", PASSWORD)
    with TestClient(create_app(settings, services=services, background_work=False)) as client:
        yield client
    services["db"].close()


@pytest.fixture
def stateless(edge):
    """The module's app with no cookies from an earlier test."""
    edge.cookies.clear()
    return edge


@pytest.fixture
def app_for(services):
    """TestClients over the full app with other settings (the same loaded services)."""
    from kb.web.app import create_app

    opened = []

    def make(settings, **client_options):
        services["settings"] = settings
        client = TestClient(create_app(settings, services=services, background_work=False), **client_options)
        opened.append(client.__enter__())
        return opened[-1]

    yield make
    for client in opened:
        client.__exit__(None, None, None)


# 8. DNS rebinding: a Host outside the allow-list is a 400, whatever the path or method.


@pytest.mark.parametrize("method, path", [("POST", "/api/v1/feedback"), ("GET", "/"), ("GET", "/api/v1/healthz"),
                                          ("GET", "/no-such-page"), ("GET", "/admin/login"),
                                          ("OPTIONS", "/api/v1/feedback")])
def test_a_rebinding_host_gets_400(stateless, method, path):
    evil = "rebind.evil.example:8000"
    headers = {"host": evil, "origin": f"http://{evil}", "accept": "text/html",
               "access-control-request-method": "POST"}
    r = stateless.request(method, path, json={"helpful": True, "slug": "vpn-connect"} if method == "POST" else None,
                       headers=headers)
    assert r.status_code == 400, (path, r.status_code)
    assert "host" in r.json()["detail"].lower() and r.headers["x-content-type-options"] == "nosniff"
    ok = stateless.post("/api/v1/feedback", json={"helpful": True, "slug": "vpn-connect"})
    assert ok.status_code == 201  # the same request with the served host name


def test_allowed_hosts_default_to_the_base_url_and_this_machine(settings, app_for):
    from kb.web.edge import allowed_hosts

    named = settings.replace(allowed_hosts=(), base_url="https://help.example.com:8443/kb", host="10.1.2.3")
    assert allowed_hosts(named) == {"help.example.com", "localhost", "127.0.0.1", "::1", "10.1.2.3"}
    default = app_for(settings.replace(allowed_hosts=(), base_url="https://help.example.com"))
    assert default.get("/api/v1/healthz").status_code == 400  # "testserver.local" is not served by default
    for host in ("help.example.com", "HELP.example.com:443", "localhost:8000", "127.0.0.1", "[::1]:8000"):
        assert default.get("/api/v1/healthz", headers={"host": host}).status_code == 200, host
    for host in ("help.example.com.evil.example", "evil.example", "", "localhost.evil.example"):
        assert default.get("/api/v1/healthz", headers={"host": host}).status_code == 400, host


def test_allowed_hosts_setting_replaces_the_default(settings, app_for):
    listed = app_for(settings.replace(allowed_hosts=("kb.internal", TEST_HOST)))
    assert listed.get("/api/v1/healthz", headers={"host": "kb.internal:8000"}).status_code == 200
    assert listed.get("/api/v1/healthz", headers={"host": "localhost"}).status_code == 400
    anyone = app_for(settings.replace(allowed_hosts=("*",)))
    assert anyone.get("/api/v1/healthz", headers={"host": "whatever.example"}).status_code == 200


# 3. Per-IP limits: X-Forwarded-For is believed only from KB_TRUSTED_PROXIES, right-most untrusted hop.


@pytest.mark.parametrize("peer, forwarded, proxies, client", [
    ("127.0.0.1", ["6.6.6.6"], (), "127.0.0.1"),  # the default: no proxy is trusted, loopback neither
    ("127.0.0.1", ["6.6.6.6"], ("10.0.0.0/8",), "127.0.0.1"),  # a peer outside the trusted networks
    ("10.0.0.2", ["203.0.113.7"], ("10.0.0.0/8",), "203.0.113.7"),
    ("10.0.0.2", ["6.6.6.6, 203.0.113.7"], ("10.0.0.0/8",), "203.0.113.7"),  # what the client wrote is ignored
    ("10.0.0.2", ["6.6.6.6", "203.0.113.7, 10.0.0.9"], ("10.0.0.0/8",), "203.0.113.7"),  # two headers, two proxies
    ("10.0.0.2", ["10.0.0.7, 10.0.0.9"], ("10.0.0.0/8",), "10.0.0.7"),  # all trusted: the left-most
    ("10.0.0.2", [], ("10.0.0.0/8",), "10.0.0.2"),
    ("10.0.0.2", ["203.0.113.7:5555"], ("10.0.0.2",), "203.0.113.7"),
    ("::1", ["[2001:db8::1]:443"], ("::1",), "2001:db8::1"),
    ("::ffff:10.0.0.2", ["203.0.113.7"], ("10.0.0.0/8",), "203.0.113.7"),
    ("unknown", ["203.0.113.7"], ("10.0.0.0/8",), "unknown"),
])
def test_forwarded_for_is_read_only_from_trusted_proxies(peer, forwarded, proxies, client):
    from kb.web.client import forwarded_client

    assert forwarded_client(peer, forwarded, proxies) == client


def test_trusted_proxies_must_be_addresses():
    from kb.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="trusted_proxies"):
        Settings.load(environ={"KB_TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"})


def test_uvicorn_reads_forwarded_headers_only_from_the_setting(settings, monkeypatch):
    """Both ways kb serve starts uvicorn (one process, several workers) get the same proxy options."""
    import types

    from kb.web import server

    calls = []
    monkeypatch.setattr(server.uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(server, "os", types.SimpleNamespace(environ={}))
    monkeypatch.setattr(server.logs, "configure", lambda level: None)
    for workers in (1, 2):
        server.run(settings.replace(workers=workers))
        server.run(settings.replace(workers=workers, trusted_proxies=("10.0.0.0/8", "192.168.1.5")))
    assert [(c["proxy_headers"], c["forwarded_allow_ips"]) for c in calls] == [
        (False, []), (True, ["10.0.0.0/8", "192.168.1.5"])] * 2


# 4. Open redirects: language links and redirect targets built only from same-origin paths.


def as_browser(base: str, href: str) -> str:
    """The host a browser opens for href: it drops tabs and newlines and reads '\\' as '/'."""
    cleaned = re.sub(r"[\t\n\r]", "", href.strip("".join(map(chr, range(0x21))))).replace("\\", "/")
    return urlsplit(urljoin(base, cleaned)).netloc


HOSTILE_PATHS = ["/%5Cevil.invalid", "/%5C%5Cevil.invalid", "/%09/evil.invalid", "/%0a/evil.invalid",
                 "/%0d%0a/evil.invalid", "/%5C%09evil.invalid", "/%2F/evil.invalid", "/%2F%2Fevil.invalid",
                 "/%2F%5Cevil.invalid", "/./%5Cevil.invalid", "/%E2%80%AE/evil.invalid", "/%20/%5Cevil.invalid"]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_language_links_on_a_hostile_path_stay_on_this_site(stateless, path):
    r = stateless.get(path + "?q=x", headers={"accept": "text/html"})
    assert r.status_code == 404
    hrefs = re.findall(r'href="([^"]*)"', r.text)
    assert "control characters" in r.text or any("locale=ru" in h for h in hrefs)  # the HTML page has them
    base = f"http://{TEST_HOST}/"
    leaving = [h for h in hrefs if as_browser(base, h.replace("&amp;", "&")) != TEST_HOST]
    assert leaving == []


@given(st.text(alphabet=st.sampled_from("/\\\t\n\r .:@%?#e\x00\u202e\u3000") | st.characters(), max_size=30))
@example("a\ud800b")  # a lone surrogate: no UTF-8 encodes it (hypothesis found it once)
@hypothesis_settings(max_examples=400, deadline=None)
def test_any_path_makes_a_same_origin_link(path):
    from kb.urls import Urls, local_path

    for href in (Urls().with_locale("/" + path, "ru"), local_path("/" + path, prefix="/admin", default="/admin")):
        assert href.startswith("/") and as_browser(f"http://{TEST_HOST}/a/b", href) == TEST_HOST, href


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example", "/%5Cevil.example",
                                    "/\t/evil.example", "/admin/../\\evil.example", "\\\\evil.example",
                                    "/admin\\..\\..\\evil.example"])
def test_login_redirects_never_leave_the_site(stateless, target):
    client = stateless
    page = client.get("/admin/login", params={"next": target})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/admin/login", data={"email": "owner@example.com", "password": PASSWORD,
                                          "csrf_token": token, "next": target}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/admin")
    assert as_browser(f"http://{TEST_HOST}/admin/x", r.headers["location"]) == TEST_HOST
    again = client.get("/admin/login", params={"next": target}, follow_redirects=False)  # logged in: straight on
    assert again.status_code == 303 and as_browser(f"http://{TEST_HOST}/", again.headers["location"]) == TEST_HOST


def test_anonymous_staff_redirect_keeps_a_hostile_path_as_a_query_value(stateless):
    r = stateless.get("/admin/charts/%5C%5Cevil.invalid", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login?next=")
    assert as_browser(f"http://{TEST_HOST}/", r.headers["location"]) == TEST_HOST


def test_result_click_redirects_only_to_articles(stateless):
    for slug, anchor in (("vpn-connect", "//evil.example"), ("vpn-connect", "\\evil"), ("//evil.example", "")):
        r = stateless.get("/go", params={"slug": slug, "anchor": anchor}, follow_redirects=False)
        if r.status_code == 303:
            assert r.headers["location"].startswith("/articles/vpn-connect")
        else:
            assert r.status_code == 404


# 5. Malformed bodies and paths: a 400/404/422 problem, never a 500; nothing raw in the log.

DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize("path, body", [
    ("/api/v1/tickets", '{"name": %s, "email": "a@example.com"}' % DEEP),
    ("/api/v1/events", '{"session": "x", "type": "feedback", "data": {"a": %s}}' % DEEP),
    ("/api/v1/feedback", '{"helpful": true, "slug": "vpn-connect", "comment": %s}' % DEEP),
    ("/api/v1/session", DEEP),
    ("/api/v1/tickets", '{"a": ' * 1000 + "1" + "}" * 1000),
])
def test_deeply_nested_json_is_a_400(stateless, path, body):
    r = stateless.post(path, content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "deeper than" in r.json()["detail"]


def test_json_nesting_is_counted_outside_strings_only(stateless):
    from kb.web.edge import MAX_JSON_DEPTH

    deep_text = "[" * 5000  # brackets inside a string are text
    ok = stateless.post("/api/v1/events", json={"session": "x", "type": "request_settled", "data": {"text": deep_text[:4000]}})
    assert ok.status_code == 202, ok.text
    nested: object = "x"
    for _ in range(MAX_JSON_DEPTH - 2):  # the body and "data" are two levels
        nested = [nested]
    assert stateless.post("/api/v1/events", json={"session": "x", "type": "feedback", "data": {"a": nested}}).status_code == 202
    assert stateless.post("/api/v1/events", json={"session": "x", "type": "feedback",
                                               "data": {"a": [nested]}}).status_code == 400


@pytest.mark.parametrize("path", ["/api/v1/tickets", "/api/v1/events", "/api/v1/feedback", "/api/v1/session"])
@pytest.mark.parametrize("body", [b'{"name": "a\xff\xfeb", "session": "x", "type": "feedback"}', b'\xff{}',
                                  b'{"comment": "\xed\xa0\x80"}'])
def test_invalid_utf8_in_a_json_body_is_a_400(stateless, path, body):
    r = stateless.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "UTF-8" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/static/portal.css%00.js", "/static/%00", "/static/portal.css%0d%0aX-Injected:%201",
                                  "/articles/vpn-connect%00", "/widget/kb-widget.js%00", "/%1b[2J",
                                  "/admin/gaps/1%00", "/api/v1/articles/vpn-connect%0a"])
def test_control_characters_in_a_path_are_a_404(stateless, path):
    r = stateless.get(path, headers={"accept": "text/html"})
    assert r.status_code == 404 and "control characters" in r.json()["detail"], (path, r.status_code)


def test_an_unhandled_error_logs_the_path_escaped(caplog):
    """The one place a request path reaches the log: CR/LF in it cannot start a forged line."""
    from litestar import Litestar, get
    from litestar.params import FromPath

    from kb.web.app import handle_error

    @get("/boom/{rest:path}", sync_to_thread=False)
    def boom(rest: FromPath[str]) -> str:
        raise RuntimeError("boom")

    app = Litestar([boom], exception_handlers={Exception: handle_error}, debug=False, logging_config=None)
    with TestClient(app) as c:
        with caplog.at_level("ERROR", logger="kb"):
            r = c.get("/boom/x%0d%0a2026-11-28 12:00:00,000 INFO kb: forged%1b[2J", headers={"accept": "application/json"})
    assert r.status_code == 500
    [record] = [r for r in caplog.records if r.name == "kb"]
    assert "\n" not in record.getMessage() and "\r" not in record.getMessage() and "\x1b" not in record.getMessage()
    assert "\\r\\n2026-11-28" in record.getMessage()


@pytest.mark.parametrize("path", ["/api/v1/articles?page=99999999999999999999999",
                                  "/api/v1/articles?per_page=-99999999999999999999999",
                                  "/api/v1/suggest?q=vpn&limit=18446744073709551617",
                                  "/admin/gaps/99999999999999999999999", "/admin/gaps/-9223372036854775809/trend.svg",
                                  "/api/v1/articles/99999999999999999999999"])
def test_overflowing_integers_are_4xx(stateless, path):
    r = stateless.get(path, follow_redirects=False)
    assert r.status_code < 500 and r.status_code != 200, (path, r.status_code)


# 9. Staff responses are never cached; cookies carry __Host- when Secure; charts stay small.


@pytest.fixture
def secure(settings, services, app_for):
    """An HTTPS client of an app with secure cookies, and an owner."""
    auth.add_user(services["db"], "owner@example.com", "owner", PASSWORD)
    return app_for(settings.replace(secure_cookies=True), base_url=f"https://{TEST_HOST}")


def cookies_set(response) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}


def test_secure_cookies_carry_the_host_prefix(secure):
    home = cookies_set(secure.get("/?locale=ru"))
    assert set(home) == {"__Host-kb_session", "__Host-kb_locale"}
    login_page = secure.get("/admin/login")
    nonce = cookies_set(login_page)
    assert set(nonce) == {"__Host-kb_login"}
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page.text).group(1)
    done = secure.post("/admin/login", data={"email": "owner@example.com", "password": PASSWORD, "csrf_token": token},
                       follow_redirects=False)
    assert done.status_code == 303
    session = cookies_set(done)
    assert set(session) == {"__Host-kb_admin", "__Host-kb_login"}  # the nonce is deleted
    for header in [*home.values(), *nonce.values(), *session.values()]:
        parts = [p.strip().lower() for p in header.split(";")]
        assert "secure" in parts and "path=/" in parts and not any(p.startswith("domain") for p in parts), header
    assert secure.get("/admin/gaps").status_code == 200  # the prefixed cookies are the ones read back
    assert secure.get("/", headers={"accept": "text/html"}).headers.get("set-cookie") is None  # session kept
    assert '<html lang="ru">' in secure.get("/").text  # the locale cookie is read back too
    token = re.search(r'name="csrf_token" value="([^"]+)"', secure.get("/admin/gaps").text).group(1)
    out = cookies_set(secure.post("/admin/logout", data={"csrf_token": token}, follow_redirects=False))
    assert "secure" in out["__Host-kb_admin"].lower() and "max-age=0" in out["__Host-kb_admin"].lower()


def test_plain_http_cookies_keep_their_names(stateless):
    assert set(cookies_set(stateless.get("/?locale=ru"))) == {"kb_session", "kb_locale"}
    assert set(cookies_set(stateless.get("/admin/login"))) == {"kb_login"}


@pytest.mark.parametrize("method, path, accept", [
    ("GET", "/admin", "text/html"), ("GET", "/admin/gaps", "text/html"), ("GET", "/admin/no-such", "text/html"),
    ("GET", "/admin/no-such", "application/json"), ("GET", "/admin/gaps/abc", "text/html"),
    ("GET", "/admin/login", "text/html"), ("POST", "/admin/login", "text/html"), ("POST", "/admin/logout", "text/html"),
    ("GET", "/api/v1/admin/stats", "application/json"), ("GET", "/api/v1/admin/nope", "application/json"),
    ("GET", "/admin/charts/daily.svg", "image/svg+xml"),
])
def test_every_staff_response_is_no_store(stateless, method, path, accept):
    r = stateless.request(method, path, headers={"accept": accept}, follow_redirects=False)
    assert r.headers.get("cache-control") == "no-store", (path, r.status_code, r.headers.get("cache-control"))


def test_a_ten_year_daily_chart_is_drawn_per_month(settings, services):
    import time as clock

    from kb.insight import charts, stats

    from kb.storage import schema

    db = services["db"]
    start = clock.mktime((2016, 1, 1, 12, 0, 0, 0, 0, 0))
    with db.write() as conn:
        conn.execute(schema.requests.insert(), [
            {"id": f"r_{n:016x}", "ts": start + n * 86400, "kind": "suggest", "session": "s", "query": "vpn",
             "locale": "en", "answered": 1, "top_confidence": 0.9, "fallback": 0, "results": "[]", "source": "api"}
            for n in range(3650)])
    result = stats.compute(db, settings, stats.period("2016-01-01", "2025-12-31"), clock.time())
    unit, rows = charts.per_period(result.daily)
    assert unit == "month" and len(rows) == 120
    assert sum(r["requests"] for r in rows) == sum(d["requests"] for d in result.daily) == 3650
    svg = charts.daily(result)
    assert len(svg) < 150_000, len(svg)  # 3.3 MB when every day was drawn
    assert b"Per month" in svg
    week_unit, weeks = charts.per_period(stats.compute(db, settings, stats.period("2016-01-01", "2016-12-31"),
                                                       clock.time()).daily)
    assert week_unit == "week" and 52 <= len(weeks) <= 54
    assert charts.per_period(stats.compute(db, settings, stats.period("2016-01-01", "2016-03-31"),
                                           clock.time()).daily)[0] == "day"
