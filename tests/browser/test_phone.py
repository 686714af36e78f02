"""Every portal and widget page fits a 390 px phone (Chromium at 390x844): nothing makes the page
scroll sideways, and the widget's launcher stays on screen. (Staff pages: test_admin_browser.py.)"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.browser

expect: Any
try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture explains (and fails in CI)
    expect = None

PHONE = {"width": 390, "height": 844}
# What sticks out, for the failure message: elements wider than the screen, deepest first.
WIDER = """() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391)
  .slice(-5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + ' ' +
  Math.round(e.getBoundingClientRect().right))"""


@pytest.fixture
def phone(browser: Any) -> Any:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def fits(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{url} is {width} px wide on a 390 px phone: {page.evaluate(WIDER)}"


def test_portal_pages_fit_a_phone(phone, kb_server: str):
    long_query = quote("my vpn keeps dropping every few minutes when I work from the office on the third floor")
    for path in ["/", "/?locale=ru", "/search?q=vpn+keeps+dropping", f"/search?q={long_query}",
                 "/search?q=" + quote("please order a birthday cake for the team party"),
                 "/articles/outlook-password-prompts", "/articles/vpn-error-codes", "/categories/network",
                 "/contact?q=" + quote("x" * 300), "/contact/thanks?id=T-ABCDEFGHJK", "/no/such/page"]:
        fits(phone, kb_server + path)


def test_widget_demo_and_widget_states_fit_a_phone(phone, kb_server: str, demo_server):
    fits(phone, kb_server + "/widget/demo")
    launcher = phone.locator("kb-widget[mode=launcher] #lbtn")
    box = launcher.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box  # the launcher is on screen
    # a host page made for phones (one without a viewport tag is laid out 980 px wide whatever we do)
    fits(phone, demo_server.add("/phone", """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Phone</title></head>
<body><h1>Intranet</h1><script src="{kb}/widget/kb-widget.js" data-feedback-delay="200" async></script></body></html>"""))
    phone.locator("kb-widget #lbtn").click()
    phone.locator("kb-widget #q").fill("outlook keeps asking for my password")
    expect(phone.locator("kb-widget [role=option]").first).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.locator("kb-widget #q").fill("please order a birthday cake for the team party on friday " * 3)
    expect(phone.locator("kb-widget #tf")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    panel = phone.locator("kb-widget #pn").bounding_box()
    assert panel and panel["x"] >= 0 and panel["x"] + panel["width"] <= PHONE["width"], panel
