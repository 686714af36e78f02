"""Staff pages in headless Chromium against a real `kb serve`: log in, the dashboard and the gap
board render (charts included, under the strict CSP), screenshots go to tests/artifacts/."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator


import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from servers import STAFF_PASSWORD as PASSWORD, login, start_server, stop_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser
COFFEE = ["coffee machine broken", "the coffee machine on floor 3 is not working", "coffee maker out of order",
          "espresso machine leaking water", "who fixes the coffee machine", "no coffee coming out of the machine"]


def _seed(data: Path, embedder) -> None:
    """Two staff users, a few days of activity and the gaps computed from it."""
    from kb.staff import auth
    from kb.insight import gaps
    from kb.serving.desk import Desk
    from kb.settings import Settings
    from kb.storage import schema
    from kb.storage.database import Database, record_event

    settings = Settings.load(environ={}, data=data, articles=ROOT / "articles")
    db = Database(settings.db_path)
    auth.add_user(db, "owner@example.com", "owner", PASSWORD)
    auth.add_user(db, "writer@example.com", "writer", PASSWORD)
    now = time.time()
    for i, text in enumerate(COFFEE * 2):
        ts = now - (i % 5) * 86400 - 60
        db.insert(schema.requests, dict(id=f"r_c{i}", ts=ts, kind="suggest", session=f"c{i}", query=text, locale="en",
                                        answered=0, top_confidence=0.1, fallback=0, results="[]", source="widget"))
    for i in range(6):
        ts = now - i * 86400 - 3 * 86400
        db.insert(schema.requests, dict(id=f"r_v{i}", ts=ts, kind="suggest", session=f"v{i}", query="vpn error 809",
                                        locale="en", answered=1, top_confidence=0.9, fallback=0, results="[]",
                                        source="widget"))
        record_event(db, session=f"v{i}", type="suggestion_opened", request_id=f"r_v{i}", slug="vpn-error-codes", ts=ts + 5)
    desk = Desk(settings, embedder, None)
    desk.load()
    gaps.refresh_gaps(db, settings, desk)
    db.close()


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory, indexed_dir, embedder) -> Iterator[str]:
    """`python -m kb serve` on a free port over a copy of the indexed data dir, with staff users."""
    data = tmp_path_factory.mktemp("admin-browser") / "data"
    shutil.copytree(indexed_dir, data, symlinks=True)
    _seed(data, embedder)
    proc, url = start_server(data, {"KB_CONFIG": str(data / "no-kb.toml"), "KB_GAP_REFRESH_MINUTES": "0"})
    try:
        yield url
    finally:
        stop_server(proc)



def _csp_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    return errors


def test_owner_logs_in_and_sees_dashboard_and_gap_board(admin_server, page, shot):
    csp = _csp_errors(page)
    page.goto(admin_server + "/admin/dashboard")
    assert page.url.startswith(admin_server + "/admin/login?next=")  # anonymous: sent to the login form
    shot("login")
    page.fill("#email", "owner@example.com")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/dashboard")
    assert page.locator("#fig-requests").inner_text() == "18"
    assert "sessions with at least one request" in page.content()
    for img in page.locator("img.admin-chart").all():  # server-side SVG charts load under the CSP
        assert img.evaluate("i => i.complete && i.naturalWidth > 0")
    shot("dashboard")
    page.click("nav.admin-nav >> text=Gap board")
    page.wait_for_url("**/admin/gaps")
    rows = page.locator("table.admin-table tbody tr")
    assert rows.count() == 1 and "coffee" in rows.first.inner_text().lower()
    assert page.locator("table.admin-table img").first.evaluate("i => i.complete && i.naturalWidth > 0")
    shot("gaps")
    rows.first.locator("a").first.click()
    page.wait_for_load_state()
    assert page.locator("h2", has_text="Example requests").is_visible()
    page.fill("#slug", "no-such-article")
    page.click("form[action$='/link'] button")
    assert "No published article" in page.locator(".admin-error").inner_text()
    shot("gap-detail")
    assert csp == []


def test_writer_sees_the_board_but_not_the_dashboard(admin_server, page, shot):
    login(page, admin_server, "writer@example.com")
    assert page.url.endswith("/admin/gaps")
    assert page.locator("nav.admin-nav >> text=Dashboard").count() == 0
    response = page.goto(admin_server + "/admin/dashboard")
    assert response.status == 403
    shot("writer-forbidden")
    page.goto(admin_server + "/admin/gaps")
    page.click("text=Log out")
    page.wait_for_url("**/admin/login")
    assert page.goto(admin_server + "/admin/gaps").url.startswith(admin_server + "/admin/login")


# A header word split across lines has more than one box: "Imp act", "Mis ses", "Sta tus".
BROKEN_HEADERS = """() => {
  const out = [];
  for (const th of document.querySelectorAll('th')) {
    const text = th.firstChild && th.firstChild.nodeType === 3 ? th.firstChild : null;
    if (!text) continue;
    for (const m of text.data.matchAll(/\\S+/g)) {
      const r = document.createRange();
      r.setStart(text, m.index);
      r.setEnd(text, m.index + m[0].length);
      const lines = new Set([...r.getClientRects()].map(b => Math.round(b.top)));
      if (lines.size > 1) out.push(m[0]);
    }
  }
  return out;
}"""


def test_staff_pages_fit_a_phone_and_headers_break_between_words(admin_server, browser):
    for viewport in ({"width": 390, "height": 844}, {"width": 1280, "height": 800}):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        try:
            page.goto(admin_server + "/admin/login")
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            login(page, admin_server, "owner@example.com")
            page.goto(admin_server + "/admin/gaps")
            gap = page.locator("table.admin-table tbody tr a").first.get_attribute("href")
            for path in ["/admin", "/admin/dashboard", "/admin/gaps", gap, "/admin/articles", "/admin/articles/new",
                         "/admin/articles/vpn-error-codes/edit", "/admin/articles/vpn-error-codes/history", "/admin/audit"]:
                page.goto(admin_server + path)
                assert page.url.startswith(admin_server + path.split("?")[0]), page.url  # not sent elsewhere
                width = page.evaluate("document.documentElement.scrollWidth")
                wider = page.evaluate("() => [...document.querySelectorAll('body *')].filter(e =>"
                                      " e.getBoundingClientRect().right > innerWidth + 1).slice(-4).map(e => e.outerHTML.slice(0, 80))")
                assert width <= viewport["width"], f"{path} is {width} px wide at {viewport['width']} px: {wider}"
                assert page.evaluate(BROKEN_HEADERS) == [], f"{path} at {viewport['width']} px"
        finally:
            context.close()
