"""A writer closes a gap in the browser, in headless Chromium against a real `kb serve` on a fresh
data directory: misses typed into the widget, the gap board, "write a new article", phrasings
added from the misses, the replay before publishing, publish, the widget answers, the gap is
resolved with its figure. And a concurrent edit is refused with a diff.

Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from servers import STAFF_PASSWORD as PASSWORD, login, start_server, stop_server  # noqa: E402

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
VENDING = ["vending machine ate my money", "the snack machine took my coins", "vending machine not giving change",
           "how do I get a refund from the vending machine"]
BODY = """The snack and drinks vending machines in each kitchen belong to Northwind Catering.

## The vending machine took your money or gave no change

If a vending machine ate your money, took your coins without giving a snack, or gave no change,
Catering refunds it: write the machine number (on its front) and the amount to catering@northwind.example.
A refund from the vending machine reaches your account within a week.

## A vending machine is empty or broken

Call Catering on extension 4410 with the kitchen and the machine number.
"""
INLINE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Intranet</title></head>
<body><h1>Help</h1><kb-widget></kb-widget><script src="KB/widget/kb-widget.js" async></script></body></html>"""


@pytest.fixture(scope="module")
def writer_server(tmp_path_factory, indexed_dir, demo_site) -> Iterator[tuple[str, Path]]:
    """`kb serve` over a fresh data directory (the bundled index, no database yet) and a writable
    copy of the articles, with a writer and an owner; its base URL and the articles folder."""
    from kb.settings import Settings
    from kb.staff import auth
    from kb.storage.database import Database

    root = tmp_path_factory.mktemp("editor-browser")
    data, articles = root / "data", root / "articles"
    shutil.copytree(indexed_dir / "index", data / "index", symlinks=True)
    shutil.copytree(ROOT / "articles", articles)
    db = Database(Settings.load(environ={}, data=data).db_path)
    auth.add_user(db, "writer@example.com", "writer", PASSWORD)
    auth.add_user(db, "owner@example.com", "owner", PASSWORD)
    db.close()
    env = {"KB_CONFIG": str(data / "no-kb.toml"), "KB_ARTICLES": str(articles), "KB_GAP_REFRESH_MINUTES": "0",
           "KB_CORS_ORIGINS": demo_site.origin, "KB_INDEX_POLL_SECONDS": "0.5", "KB_RATE_SUGGEST_PER_MINUTE": "10000"}
    proc, url = start_server(data, env, inherit_kb=False)
    try:
        yield url, articles
    finally:
        stop_server(proc)


def ask_widget(browser: Any, site: Any, kb: str, text: str) -> dict:
    """Type a request into the widget on the host page, in a fresh context (a new session), as a
    person would; the suggestions it showed for the whole text."""
    context = browser.new_context()
    page = context.new_page()
    try:
        page.add_init_script("window.__kb = []; document.addEventListener('kb-suggestions', e => __kb.push("
                             "{query: e.detail.query, answered: e.detail.answered,"
                             " slugs: e.detail.suggestions.map(s => s.slug)}));")
        page.goto(site.add("/editor-widget", INLINE.replace("KB", kb)))
        page.locator("kb-widget #q").press_sequentially(text, delay=30)
        page.wait_for_function("t => __kb.some(s => s.query === t)", arg=text, timeout=20_000)
        return [s for s in page.evaluate("__kb") if s["query"] == text][-1]
    finally:
        context.close()



def test_a_writer_closes_a_gap_from_the_browser(writer_server, browser, page, demo_site, shot):
    base, articles = writer_server
    for text in VENDING:
        assert not ask_widget(browser, demo_site, base, text)["answered"], text  # a real miss

    login(page, base, "writer@example.com")
    page.goto(base + "/admin/gaps")
    page.click("form[action$='/gaps/refresh'] button")
    gap_link = page.locator("table.admin-table tbody tr a", has_text=re.compile("vending|snack", re.I)).first
    gap_link.click()
    page.wait_for_load_state()
    shot("gap")
    page.click("#fix-actions >> text=Write a new article")
    page.wait_for_url("**/admin/articles/new?gap=*")
    assert page.locator("#title").input_value().lower() in [t.lower() for t in VENDING]  # the title suggestion
    assert page.locator("#gap-examples li").count() >= 3
    page.fill("#title", "Vending machine took your money")
    page.fill("#slug", "vending-machine-refund")
    page.fill("#category", "facilities")
    page.fill("#body", BODY)
    for text in VENDING[:2]:
        page.locator("#gap-examples input[type=checkbox]").and_(page.locator(f"[value='{text}']")).check()
    page.click("#phrases-button")
    page.wait_for_load_state()
    assert sorted(page.locator("#aliases").input_value().splitlines()) == sorted(VENDING[:2])
    page.click("#replay-button")
    page.wait_for_load_state()
    after, total = map(int, re.match(r"(\d+) of (\d+)", page.locator("#replay-after").inner_text()).groups())
    assert total >= len(VENDING) and after == total, page.locator("#replay").inner_text()
    assert page.locator("#replay-before").inner_text() == f"0 of {total}"
    assert page.locator("#status").input_value() == "draft"  # nothing served until the writer publishes
    shot("replay-before-publishing")
    page.select_option("#status", "published")
    page.click("#save-button")
    page.wait_for_url("**/admin/articles/vending-machine-refund/edit*")
    assert "Saved." in page.locator(".admin-saved").first.inner_text()
    assert "vending-machine-refund" in (articles / "vending-machine-refund.md").read_text()
    shot("saved")

    answer: dict = {}
    for _ in range(60):  # the rebuild runs in the background; the server swaps it in within the poll
        answer = ask_widget(browser, demo_site, base, VENDING[0])
        if answer["answered"] and answer["slugs"][0] == "vending-machine-refund":
            break
    assert answer["answered"] and answer["slugs"][0] == "vending-machine-refund", answer

    page.goto(base + page.locator("a", has_text="← Gap:").get_attribute("href"))
    page.click("form[action$='/replay'] button")
    page.wait_for_load_state()
    figure = page.locator("#replay-figure").inner_text()
    assert re.search(rf"Answered when asked: 0 / {total}\s*→ after: {total} / {total}", figure), figure
    page.click("text=Accept: mark resolved")
    page.wait_for_load_state()
    assert "Status\nresolved" in page.locator("dl.admin-facts").inner_text() or "resolved" in page.content()
    shot("resolved")
    page.goto(base + "/admin/gaps?status=resolved")
    assert f"0 → {total} / {total}" in page.locator("table.admin-table").inner_text()


def test_a_concurrent_edit_is_refused_with_a_diff(writer_server, page, shot):
    base, articles = writer_server
    login(page, base, "writer@example.com")
    page.goto(base + "/admin/articles/sick-leave/edit")
    path = articles / "sick-leave.md"
    path.write_text(path.read_text().replace("## ", "## (edited in git) ", 1))  # someone else, meanwhile
    page.fill("#body", page.locator("#body").input_value() + "\nA note typed in the browser.\n")
    page.click("#save-button")
    page.wait_for_load_state()
    assert "changed on disk" in page.locator("#form-error").inner_text()
    diff = page.locator("#conflict-diff").inner_text()
    assert "(edited in git)" in diff and "+A note typed in the browser." in diff
    assert "A note typed in the browser." in page.locator("#body").input_value()  # nothing lost
    assert "A note typed in the browser." not in path.read_text()
    shot("conflict")
    page.click("#overwrite-button")
    page.wait_for_url("**/admin/articles/sick-leave/edit?saved=1")
    assert "A note typed in the browser." in path.read_text()
