"""The help-center portal pages: rendering, locales, recording, escaping and bad input."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from kb.content.articles import SLUG
from kb.web.i18n import count_articles, format_date
from kb.web.pages import segments

HTML = {"accept": "text/html,application/xhtml+xml"}
RU = {**HTML, "accept-language": "ru-RU,ru;q=0.9,en;q=0.5"}
UNANSWERED = "how do I bake sourdough bread"
# A loanword in Latin letters reads as Russian (паркинг) or English alike, so the UI's locale decides the
# request's language; only an English article answers it.
EN_ONLY = "parking"


class Links(HTMLParser):
    """Collect ids, hrefs and form fields of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[tuple[str, str]] = []  # (class of the enclosing container, href)
        self.names: set[str] = set()
        self._stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag in ("div", "nav", "section", "ol", "ul"):
            self._stack.append(a.get("class") or "")
        if tag == "a" and a.get("href"):
            self.hrefs.append((" ".join(self._stack), a["href"]))
        if tag in ("input", "textarea", "select") and a.get("name"):
            self.names.add(a["name"])

    def handle_endtag(self, tag):
        if tag in ("div", "nav", "section", "ol", "ul") and self._stack:
            self._stack.pop()


def parse(html: str) -> Links:
    p = Links()
    p.feed(html)
    return p


def page(client, path, headers=HTML, status=200):
    r = client.get(path, headers=headers, follow_redirects=False)
    assert r.status_code == status, (path, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("text/html")
    return r


def db(client):
    return client.app.state["db"]


def session_cookie(client) -> str:
    """The session id the portal's signed kb_session cookie names (`<id>.<signature>`)."""
    return client.cookies.get("kb_session").rpartition(".")[0]


# -- home, categories, locales -------------------------------------------------------------


def test_home_has_search_categories_and_recent_articles(client):
    r = page(client, "/")
    html = r.text
    assert '<html lang="en">' in html
    assert 'action="/search"' in html and 'method="get"' in html and 'name="q"' in html
    assert re.search(r'<label for="q-hero"[^>]*>Search the help center</label>', html)
    assert "Network and VPN" in html and "/categories/network" in html
    counts = client.app.state["desk"].categories("en")
    assert f"{counts['network']} articles" in html
    assert 'href="#main"' in html and 'id="main"' in html  # skip link and its target
    assert "<header" in html and "<footer" in html and "<main" in html
    assert r.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("kb_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    recent = [h for c, h in parse(html).hrefs if h.startswith("/articles/")]
    assert 1 <= len(recent) <= 6


def test_session_cookie_is_kept_once_set(client):
    page(client, "/")
    first = session_cookie(client)
    r = page(client, "/contact")
    assert "set-cookie" not in r.headers
    assert session_cookie(client) == first


def test_russian_accept_language_gives_russian_ui(client):
    html = page(client, "/", headers=RU).text
    assert '<html lang="ru">' in html
    assert "Чем мы можем помочь?" in html and "Сеть и VPN" in html
    ru_count = client.app.state["desk"].categories("ru")["network"]
    assert count_articles(ru_count, "ru") in html
    assert "Browse by category" not in html


def test_locale_parameter_wins_and_is_remembered(client):
    html = page(client, "/?locale=ru", headers={**HTML, "accept-language": "en"}).text
    assert '<html lang="ru">' in html
    assert client.cookies.get("kb_locale") == "ru"
    assert '<html lang="ru">' in page(client, "/", headers={**HTML, "accept-language": "en"}).text
    assert '<html lang="en">' in page(client, "/?locale=en").text


def test_category_page_lists_its_articles(client):
    desk = client.app.state["desk"]
    html = page(client, "/categories/network").text
    assert "<h1>Network and VPN</h1>" in html
    for a in desk.articles(locale="en", category="network"):
        assert f'href="/articles/{a.slug}"' in html
    ru = desk.articles(locale="ru", category="network")
    assert ru and f'href="/articles/{ru[0].slug}"' in html  # other languages listed separately
    assert "In other languages" in html


@pytest.mark.parametrize("path", ["/categories/nope", "/categories/..%2F..%2Fetc", "/categories/NETWORK"])
def test_unknown_category_is_404(client, path):
    assert "Not found" in page(client, path, status=404).text


# -- articles ------------------------------------------------------------------------------


def test_article_page_renders_markdown_toc_and_feedback(client):
    desk = client.app.state["desk"]
    article = desk.article("reset-password")
    r = page(client, "/articles/reset-password")
    html, links = r.text, parse(r.text)
    assert f"<h1 id=\"article-title\">{article.title}</h1>" in html
    assert '<h2 id="before-you-start">Before you start</h2>' in html
    toc = [h for c, h in links.hrefs if "toc" in c]
    assert len(toc) >= 3 and all(h[1:] in links.ids for h in toc)  # every entry has its anchor
    assert f'datetime="{article.updated}"' in html and format_date(article.updated, "en") in html
    assert all(f'<span class="tag">{tag}</span>' in html for tag in article.tags)
    assert 'action="/articles/reset-password/feedback"' in html
    assert 'name="helpful" value="yes"' in html and 'name="helpful" value="no"' in html
    assert '<textarea id="fb-comment" name="comment"' in html  # visible without JavaScript
    assert "Related articles" in html
    related = [h for c, h in links.hrefs if "related" in c]
    assert related and all(h.removeprefix("/articles/") in desk.library.articles for h in related)
    assert r.headers["cache-control"] == "no-store"


def test_article_view_is_recorded_with_the_session(client):
    page(client, "/")
    page(client, "/articles/vpn-connect")
    rows = db(client).query("SELECT * FROM events WHERE type = 'article_view'")
    assert [(row["slug"], row["session"]) for row in rows] == [("vpn-connect", session_cookie(client))]


def test_relative_links_inside_articles_resolve(client):
    checked = 0
    for slug in ("reset-password", "vpn-connect", "password-expired"):
        base = f"/articles/{slug}"
        for container, href in parse(page(client, base).text).hrefs:
            if "prose" not in container or urlsplit(href).scheme:
                continue
            target = urljoin(base, href)
            assert target.startswith("/articles/"), target
            page(client, urlsplit(target).path)
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("path", [
    "/articles/no-such-article", "/articles/../../etc/passwd", "/articles/..%2F..%2Fetc%2Fpasswd",
    "/articles/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/articles/Reset-Password", "/articles/a_b",
])
def test_unknown_or_hostile_slug_is_404_html(client, path):
    html = page(client, path, status=404).text
    assert "Not found" in html and "root:" not in html


def test_error_page_links_never_point_off_site(client):
    url = httpx.URL("http://testserver.local//evil.example/x")
    assert url.path == "//evil.example/x"
    html = page(client, url, status=404).text
    hrefs = [h for _, h in parse(html).hrefs]
    assert hrefs and all(h.startswith(("/", "#")) and not h.startswith("//") for h in hrefs), hrefs


def test_article_feedback_yes_is_recorded_and_thanked(client):
    page(client, "/articles/reset-password")
    r = client.post("/articles/reset-password/feedback", data={"helpful": "yes"}, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/articles/reset-password?feedback=yes#feedback"
    row = db(client).one("SELECT * FROM feedback")
    assert (row["slug"], row["helpful"], row["source"], row["session"]) == (
        "reset-password", 1, "article", session_cookie(client))
    event = db(client).one("SELECT * FROM events WHERE type = 'feedback'")
    assert event["slug"] == "reset-password" and json.loads(event["data"])["helpful"] is True
    html = page(client, r.headers["location"]).text
    assert "Thank you for your feedback." in html and 'name="helpful"' not in html


def test_article_feedback_no_keeps_the_comment_and_offers_contact(client):
    r = client.post("/articles/vpn-connect/feedback", data={"helpful": "no", "comment": "  It never <b>connects</b> "},
                    headers=HTML, follow_redirects=True)
    assert r.status_code == 200 and "/contact?q=" in r.text
    row = db(client).one("SELECT helpful, comment FROM feedback")
    assert (row["helpful"], row["comment"]) == (0, "It never <b>connects</b>")


@pytest.mark.parametrize("body,status", [({"helpful": "maybe"}, 422), ({}, 422), ({"helpful": "no", "comment": "x" * 2001}, 422)])
def test_article_feedback_bad_form_is_rejected(client, body, status):
    r = client.post("/articles/vpn-connect/feedback", data=body, headers=HTML, follow_redirects=False)
    assert r.status_code == status and r.headers["content-type"].startswith("text/html")
    assert db(client).one("SELECT count(*) AS n FROM feedback")["n"] == 0


def test_article_feedback_for_unknown_article_is_404(client):
    r = client.post("/articles/no-such-article/feedback", data={"helpful": "yes"}, headers=HTML)
    assert r.status_code == 404
    assert db(client).one("SELECT count(*) AS n FROM feedback")["n"] == 0


# -- search --------------------------------------------------------------------------------


def test_search_shows_highlighted_results_and_records_the_request(client):
    page(client, "/")
    html = page(client, "/search?q=vpn+error+809").text
    assert "<mark>" in html.lower()
    goes = [h for c, h in parse(html).hrefs if h.startswith("/go?")]
    assert 1 <= len(goes) <= 10
    first = parse_qs(urlsplit(goes[0]).query)
    row = db(client).one("SELECT * FROM requests")
    assert (row["kind"], row["source"], row["session"], row["query"]) == ("search", "portal", session_cookie(client), "vpn error 809")
    assert first["r"] == [row["id"]] and first["slug"][0] == json.loads(row["results"])[0]["slug"]
    assert "No article answers this" not in html
    # the order is the ranking: one label, on the top answered result, and no percentage under any row
    assert html.count("Best match") == 1 and not re.search(r"\d+\s*%", html)
    first = html.index('<li class="result"')
    second = html.find('<li class="result"', first + 1)
    assert first < html.index("Best match") < (second if second > 0 else len(html))


def test_no_result_reads_zero_percent_under_a_relevant_one(client):
    html = page(client, "/search?q=vpn+keeps+dropping").text
    assert "0% match" not in html and html.count('class="best"') <= 1


def test_search_without_an_answer_is_honest_and_leads_to_contact(client):
    html = page(client, "/search?q=" + UNANSWERED.replace(" ", "+")).text
    row = db(client).one("SELECT answered FROM requests")
    assert row["answered"] == 0
    assert "No article answers this" in html
    assert 'href="/contact?q=how+do+I+bake+sourdough+bread"' in html


@pytest.mark.parametrize("query", [None, "", "   ", "x" * 501])
def test_empty_or_too_long_query_is_400_html(client, query):
    r = client.get("/search", params={} if query is None else {"q": query}, headers=HTML)
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert "Bad request" in r.text and "<form" in r.text
    assert db(client).one("SELECT count(*) AS n FROM requests")["n"] == 0


def test_a_500_character_query_is_accepted(client):
    assert client.get("/search", params={"q": "vpn " + "x" * 496}, headers=HTML).status_code == 200


@pytest.mark.parametrize("query", ['"', '"unbalanced', "AND(", "vpn AND(", "*", "NEAR", "vpn NEAR/2 error", "OR OR", "-", ":"])
def test_fts_syntax_queries_do_not_fail(client, query):
    r = client.get("/search", params={"q": query}, headers=HTML)
    assert r.status_code == 200, r.text[:300]


def test_markup_in_the_query_is_escaped(client):
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    r = client.get("/search", params={"q": evil}, headers=HTML)
    assert r.status_code == 200
    assert "<script>alert(1)</script>" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    r = client.get("/contact", params={"q": evil}, headers=HTML)
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;" in r.text


def test_russian_search_prefers_russian_articles(client):
    html = page(client, "/search?q=" + "забыл пароль", headers=RU).text
    assert '<html lang="ru">' in html and "Результаты по запросу" in html
    results = json.loads(db(client).one("SELECT results FROM requests")["results"])
    desk = client.app.state["desk"]
    assert desk.article(results[0]["slug"]).locale == "ru"
    assert "Нет результатов на языке" not in html


def test_fallback_to_other_languages_is_said(client):
    html = client.get("/search", params={"q": EN_ONLY, "locale": "ru"}, headers=HTML).text
    row = db(client).one("SELECT fallback, results FROM requests")
    assert row["fallback"] == 1
    assert "Нет результатов на языке «Русский»; показаны результаты на других языках." in html
    assert '<span class="badge">EN</span>' in html
    html = client.get("/search", params={"q": EN_ONLY, "locale": "en"}, headers=HTML).text
    assert "No results in" not in html


def test_result_click_is_recorded_and_redirects_to_the_article(client):
    page(client, "/search?q=vpn")
    request_id = db(client).one("SELECT id FROM requests")["id"]
    r = client.get("/go", params={"r": request_id, "slug": "vpn-connect", "anchor": "steps"}, headers=HTML,
                   follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/articles/vpn-connect#steps"
    row = db(client).one("SELECT * FROM events WHERE type = 'result_click'")
    assert (row["request_id"], row["slug"], row["session"]) == (request_id, "vpn-connect", session_cookie(client))


@pytest.mark.parametrize("params", [
    {"slug": "//evil.example"}, {"slug": "https://evil.example"}, {"slug": "../admin"},
    {"slug": "no-such-article"}, {},
])
def test_go_refuses_anything_but_a_known_article(client, params):
    r = client.get("/go", params=params, headers=HTML, follow_redirects=False)
    assert r.status_code in (400, 404) and "location" not in r.headers


def test_go_drops_a_hostile_anchor_and_request_id(client):
    r = client.get("/go", params={"slug": "vpn-connect", "anchor": "x\"><script>", "r": "javascript:1"},
                   headers=HTML, follow_redirects=False)
    assert r.headers["location"] == "/articles/vpn-connect"
    assert db(client).one("SELECT request_id FROM events WHERE type = 'result_click'")["request_id"] == ""


# -- contact -------------------------------------------------------------------------------


def test_contact_form_is_prefilled_from_the_query(client):
    html = page(client, "/contact?q=printer+is+jammed").text
    fields = parse(html).names
    assert {"name", "email", "subject", "description", "category", "website"} <= fields
    assert 'value="printer is jammed"' in html and ">printer is jammed</textarea>" in html
    assert '<label for="f-email">Work email</label>' in html
    assert 'class="hp" aria-hidden="true"' in html


def test_contact_validation_errors_rerender_the_form(client):
    form = {"name": "Ann <b>", "email": "not-an-email", "subject": "", "description": "", "category": "printing"}
    r = client.post("/contact", data=form, headers=HTML)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'id="e-email"' in html and "enter a valid email address" in html
    assert 'id="e-subject"' in html and 'id="e-description"' in html and 'id="e-name"' not in html
    assert 'value="Ann &lt;b&gt;"' in html  # the user's value is kept, escaped
    assert '<option value="printing" selected>' in html
    assert db(client).one("SELECT count(*) AS n FROM tickets")["n"] == 0


def test_contact_errors_are_translated_in_russian(client):
    r = client.post("/contact", data={"name": "", "email": "a@b.example", "subject": "s", "description": "d"}, headers=RU)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "укажите имя" in r.text and '<html lang="ru">' in r.text


def test_contact_creates_a_ticket_and_confirms_it(client):
    page(client, "/search?q=printer+jammed")
    form = {"name": "Ann Lee", "email": "ann@northwind.example", "subject": "Printer jammed",
            "description": "The 3rd floor printer is jammed.", "category": "printing", "website": "", "q": "printer jammed"}
    r = client.post("/contact", data=form, headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/contact/thanks?id=T-")
    ticket_id = parse_qs(urlsplit(r.headers["location"]).query)["id"][0]
    row = db(client).one("SELECT * FROM tickets WHERE id = :id", {"id": ticket_id})
    assert (row["email"], row["body"], row["session"], row["category"]) == (
        "ann@northwind.example", form["description"], session_cookie(client), "printing")
    assert "printer jammed" in row["transcript"]  # the search before the ticket travels with it
    html = page(client, r.headers["location"]).text
    assert ticket_id in html and "Your request has been sent" in html


def test_contact_honeypot_stores_nothing(client):
    form = {"name": "Bot", "email": "bot@spam.example", "subject": "Buy", "description": "Buy now", "website": "http://spam"}
    r = client.post("/contact", data=form, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert db(client).one("SELECT count(*) AS n FROM tickets")["n"] == 0


def test_thanks_page_ignores_a_hostile_id(client):
    html = page(client, "/contact/thanks?id=%3Cscript%3E").text
    assert "<script>" not in html.split("</head>")[1] and "Your ticket number is" not in html


# -- errors and static ---------------------------------------------------------------------


def test_unknown_path_is_a_404_page(client):
    r = page(client, "/no/such/page", status=404)
    assert "Not found" in r.text and 'action="/search"' in r.text
    ru = page(client, "/no/such/page", headers=RU, status=404).text
    assert "Страница не найдена" in ru and '<html lang="ru">' in ru


def test_static_files_are_cached(client):
    css = client.get("/static/portal.css")
    assert css.status_code == 200
    assert sorted(css.headers["cache-control"].replace(" ", "").split(",")) == ["max-age=300", "public"]
    assert "focus-visible" in css.text
    js = client.get("/static/portal.js")
    assert js.status_code == 200 and "data-fb-comment" in js.text
    assert client.get("/static/../pages.py").status_code == 404


def test_pages_have_no_inline_scripts_or_styles(client):
    for path in ("/", "/articles/reset-password", "/search?q=vpn", "/contact", "/categories/email"):
        html = page(client, path).text
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], path
        assert "<style" not in html and " style=" not in html and "onclick" not in html, path


# -- pieces --------------------------------------------------------------------------------


def test_segments_split_highlights_and_tolerate_bad_spans():
    assert segments("reset your password", [(0, 5), (11, 19)]) == [("reset", True), (" your ", False), ("password", True)]
    assert segments("abc", [(1, 99), (0, 2)]) == [("ab", True), ("c", True)]
    assert segments("abc", [(5, 9), (2, 1)]) == [("abc", False)]
    assert segments("", []) == []


def test_counts_and_dates_per_locale():
    assert [count_articles(n, "ru") for n in (1, 2, 5, 11, 21, 24)] == [
        "1 статья", "2 статьи", "5 статей", "11 статей", "21 статья", "24 статьи"]
    assert count_articles(1, "en") == "1 article" and count_articles(3, "en") == "3 articles"
    assert format_date("2026-10-14", "ru") == "14 октября 2026" and format_date("bad", "en") == "bad"


def test_slug_pattern_used_by_go_refuses_paths():
    assert not SLUG.match("../etc") and SLUG.match("reset-password")
