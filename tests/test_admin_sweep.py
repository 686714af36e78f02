"""Every staff page and filter, for a writer and an owner, answers 2xx, 3xx or 4xx: never a 5xx,
and never a response a browser or proxy may cache (Cache-Control: no-store, errors and redirects too).

A schemathesis-like sweep over the HTML and JSON routes under /admin and /api/v1/admin: each GET
route with every path value and query value from a hostile list, each POST route with and
without its CSRF token and with odd fields.
"""

from __future__ import annotations

import itertools
import re
import time

import pytest
from litestar.testing import TestClient

from kb.storage import schema

from kb.staff import auth
from servers import TEST_HOST

PASSWORD = "correct horse battery"
IDS = ["1", "0", "-1", "99999999999999999999999", "-9223372036854775809", "18446744073709551616", "1e400", "abc",
       "1.5", "%00", "%0d%0a", "%2e%2e"]
VALUES = ["", "en", "ru", "open", "planned", "resolved", "dismissed", "bogus", "<script>alert(1)</script>",
          "2026-11-01", "2026-13-45", "0001-01-01", "9999-12-31", "%00", "a" * 3000, "ё/\\..%0d%0a"]
QUERY_NAMES = ["locale", "status", "since", "until", "q", "page"]
NAMES = ["figures.csv", "daily.csv", "nope.csv", "daily.svg", "funnel.svg", "x.svg", "export.csv", "..%2f"]


@pytest.fixture(scope="module")
def staff(tmp_path_factory, indexed_dir, embedder):
    """An app with a writer, an owner and one gap."""
    import shutil
    from pathlib import Path

    from kb.insight import gaps
    from kb.settings import Settings
    from kb.web.app import build_services, create_app

    data = tmp_path_factory.mktemp("sweep") / "data"
    shutil.copytree(indexed_dir, data, symlinks=True)
    settings = Settings.load(environ={}, data=data, articles=Path(__file__).resolve().parents[1] / "articles",
                             gap_refresh_minutes=0, rate_suggest_per_minute=0, allowed_hosts=(TEST_HOST,))
    services = build_services(settings, embedder=embedder)
    db = services["db"]
    auth.add_user(db, "writer@example.com", "writer", PASSWORD)
    auth.add_user(db, "owner@example.com", "owner", PASSWORD)
    with db.write() as conn:
        for i, text in enumerate(["the coffee machine is broken", "coffee machine not working",
                                  "who repairs the coffee maker", "espresso machine leaking"]):
            conn.execute(schema.requests.insert().values(
                id=f"r_sweep{i}", ts=time.time() - 60 + i, kind="suggest", session=f"s{i}", query=text,
                locale="en", answered=0, top_confidence=0.1, fallback=0, results="[]", source="api"))
    gaps.refresh_gaps(db, settings, services["desk"])
    with TestClient(create_app(settings, services=services, background_work=False)) as client:
        yield client
    db.close()


def login(client: TestClient, email: str) -> str:
    client.cookies.clear()
    page = client.get("/admin/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = client.post("/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/gaps").text).group(1)


def routes(client: TestClient, method: str) -> list[str]:
    return sorted({r.path for r in client.app.routes
                   if r.path.startswith(("/admin", "/api/v1/admin")) and method in getattr(r, "methods", ())})


def fill(path: str) -> list[str]:
    """The path with each parameter replaced by every sample value."""
    slots = re.findall(r"\{(\w+):(\w+)\}", path)
    if not slots:
        return [path]
    choices = [IDS if kind == "int" else NAMES + ["link", "replay", "status", "trend.svg"] for _, kind in slots]
    out = []
    for combo in itertools.product(*choices):
        filled = path
        for (name, kind), value in zip(slots, combo):
            filled = filled.replace(f"{{{name}:{kind}}}", value, 1)
        out.append(filled)
    return out


def check(response, where: str) -> None:
    assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text[:300]}"
    assert response.headers.get("cache-control") == "no-store", f"{where} -> {response.status_code} cacheable"


@pytest.mark.parametrize("email", ["", "writer@example.com", "owner@example.com"])
def test_every_get_route_and_filter_answers_below_500(staff, email):
    if email:
        login(staff, email)
    else:
        staff.cookies.clear()  # anonymous: every answer is a redirect to the login form or a 401
    seen = 0
    for route in routes(staff, "GET"):
        for path in fill(route):
            check(staff.get(path, follow_redirects=False), path)
            for name, value in itertools.product(QUERY_NAMES, VALUES):
                check(staff.get(path, params={name: value}, follow_redirects=False), f"{path}?{name}={value[:30]}")
                seen += 1
    assert seen > 500


@pytest.mark.parametrize("email", ["writer@example.com", "owner@example.com"])
def test_every_post_route_answers_below_500(staff, email):
    token = login(staff, email)
    for route in routes(staff, "POST"):
        if route.endswith("/logout") or route.endswith("/login"):
            continue
        for path in fill(route):
            for form in ({}, {"csrf_token": "forged"}, {"csrf_token": token},
                         {"csrf_token": token, "slug": "vpn-connect", "status": "resolved"},
                         {"csrf_token": token, "slug": "../../etc/passwd", "status": "bogus"},
                         {"csrf_token": token, "slug": "x" * 5000, "status": "\x00"}):
                check(staff.post(path, data=form, follow_redirects=False), f"POST {path} {list(form)}")


def test_the_gap_filter_the_issue_named_works_and_keeps_the_page_english(staff):
    login(staff, "writer@example.com")
    page = staff.get("/admin/gaps", params={"status": "open", "locale": ""})
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert '<option value="open" selected>' in page.text
    bad = staff.get("/admin/gaps", params={"status": "bogus"})
    assert bad.status_code == 400 and "status" in bad.text


def test_staff_pages_are_never_cached(staff):
    login(staff, "owner@example.com")
    for path in ("/admin/gaps", "/admin/gaps/1", "/admin/dashboard", "/admin/login"):
        response = staff.get(path)
        assert response.status_code == 200, path
        assert "no-store" in response.headers.get("cache-control", ""), path
