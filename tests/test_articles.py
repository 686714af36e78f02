"""The article model: front matter, validation errors, safe rendering, passages and the bundled KB."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from kb.content.articles import load_dir, parse, render, slugify, split_sections, toc
from kb.errors import ArticleError

ARTICLES = Path(__file__).resolve().parents[1] / "articles"
REQUIRED_KEYS = ("title", "slug", "category", "tags", "locale", "status", "updated")

GOOD = """---
title: Connect to the VPN
slug: vpn-connect-test
category: Network
tags: [vpn, globalprotect]
locale: en
status: published
updated: 2026-01-31
aliases:
  - vpn from home
  - globalprotect login
---
Use the VPN when you work away from the office.

## Steps to connect

1. Open GlobalProtect.
2. Click **Connect**.

## Who to contact

Call the service desk.
"""


def article_text(slug: str, title: str | None = None, body: str = "Some text.", **meta: str) -> str:
    """A minimal valid article file, with front matter keys overridable."""
    fields = {"title": title or slug.replace("-", " ").title(), "slug": slug, "category": "test",
              "locale": "en", "status": "published", "updated": "2026-01-01", **meta}
    head = "\n".join(f"{k}: {v}" for k, v in fields.items() if v is not None)
    return f"---\n{head}\n---\n{body}\n"


def raises(source: str, path: str = "bad.md") -> ArticleError:
    with pytest.raises(ArticleError) as info:
        parse(source, path)
    return info.value


# -- front matter -----------------------------------------------------------------------------


def test_front_matter_fields_are_parsed():
    a = parse(GOOD, "vpn.md")
    assert a.title == "Connect to the VPN"
    assert a.slug == "vpn-connect-test"
    assert a.category == "network"  # normalised to lowercase
    assert a.tags == ("vpn", "globalprotect")
    assert a.locale == "en"
    assert a.status == "published" and a.published
    assert a.updated == "2026-01-31"  # YAML dates become ISO strings
    assert a.aliases == ("vpn from home", "globalprotect login")
    assert a.path == "vpn.md"
    assert a.body.startswith("Use the VPN")
    assert "---" not in a.body and "aliases" not in a.body


def test_draft_status_and_quoted_date():
    a = parse(article_text("draft-one", status="draft", updated='"2025-12-24"'), "d.md")
    assert a.status == "draft" and not a.published
    assert a.updated == "2025-12-24"


def test_missing_title_names_file_and_line():
    err = raises("---\nslug: hello\ncategory: x\n---\nbody\n", "dir/no-title.md")
    assert err.path == "dir/no-title.md"
    assert "title" in err.message and err.message.startswith("dir/no-title.md:")
    assert err.line == 1


@pytest.mark.parametrize(
    "source, lines",
    [
        # an indented key where a new mapping key belongs: line 4 of the file
        ("---\ntitle: Hello\nslug: hello\n  category: x\n---\nbody\n", {4}),
        # an unclosed flow list on line 3 (the parser notices it on line 3 or 4)
        ("---\ntitle: Hello\nslug: [oops\ncategory: x\n---\nbody\n", {3, 4}),
    ],
)
def test_broken_yaml_names_file_and_line(source, lines):
    err = raises(source, "broken.md")
    assert err.path == "broken.md"
    assert "YAML" in err.message
    assert err.line in lines, err.message
    assert f"broken.md:{err.line}:" in err.message


def test_bad_slug_names_line():
    err = raises(article_text("Hello World!", title="Hello"), "s.md")
    assert "slug" in err.message and "Hello World!" in err.message
    assert err.line == 3  # the line of the slug key in the file


def test_bad_status_names_line():
    err = raises(article_text("x", status="retired"), "s.md")
    assert "status" in err.message and "retired" in err.message and "archived" in err.message
    assert err.line == 6


def test_bad_date_is_refused():
    err = raises(article_text("x", updated="31/01/2026"), "s.md")
    assert "updated" in err.message and err.line == 7


def test_missing_front_matter():
    err = raises("# Just a heading\n\nNo front matter here.\n", "plain.md")
    assert err.path == "plain.md" and "front matter" in err.message


def test_unclosed_front_matter():
    err = raises("---\ntitle: Hello\n\n# body without closing fence\n", "open.md")
    assert "front matter" in err.message


def test_front_matter_that_is_not_a_mapping():
    err = raises("---\n- a\n- b\n---\nbody\n", "list.md")
    assert "mapping" in err.message


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_duplicate_slug_names_both_files(tmp_path):
    write(tmp_path, "a.md", article_text("same-slug", title="First"))
    write(tmp_path, "b.md", article_text("same-slug", title="Second"))
    result = load_dir(tmp_path)
    assert [a.title for a in result.articles] == ["First"]
    assert len(result.errors) == 1
    message = result.errors[0].message
    assert "same-slug" in message and "a.md" in message and "b.md" in message


def test_not_utf8_is_reported_by_name(tmp_path):
    write(tmp_path, "latin1.md", article_text("latin", body="Caf\xe9 au lait").encode("latin-1"))
    result = load_dir(tmp_path)
    assert result.articles == []
    assert len(result.errors) == 1
    assert result.errors[0].path == "latin1.md" and "UTF-8" in result.errors[0].message


def test_bad_files_do_not_stop_good_ones(tmp_path):
    write(tmp_path, "good-one.md", article_text("good-one"))
    write(tmp_path, "no-title.md", "---\nslug: no-title\n---\nbody\n")
    write(tmp_path, "broken.md", "---\ntitle: x\nslug: [broken\n---\nbody\n")
    write(tmp_path, "plain.md", "no front matter")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "good-two.md", article_text("good-two"))
    write(tmp_path, "README.md", "# Not an article\n")
    result = load_dir(tmp_path)
    assert sorted(a.slug for a in result.articles) == ["good-one", "good-two"]
    assert sorted(e.path for e in result.errors) == ["broken.md", "no-title.md", "plain.md"]
    assert all(e.message.startswith(e.path) for e in result.errors)


def test_missing_articles_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ArticleError) as info:
        load_dir(tmp_path / "nope")
    assert "nope" in info.value.message


# -- rendering safety -------------------------------------------------------------------------


def hrefs(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]*)"', html)


def test_script_in_body_is_text_not_markup():
    html = render("Hello\n\n<script>alert(1)</script>\n\ninline <script>alert(2)</script> too")
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_img_onerror_is_escaped():
    html = render('<img src=x onerror="alert(1)">\n\ntext <img src=x onerror=alert(2)>')
    assert "<img" not in html
    assert "&lt;img" in html


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x]( javascript:alert(1) )",
        "[x](jav&#x09;ascript:alert(1))",
        "<javascript:alert(1)>",
        "[x][ref]\n\n[ref]: javascript:alert(1)",
        "[x](vbscript:msgbox(1))",
        "[x](file:///etc/passwd)",
    ],
)
def test_unsafe_link_schemes_give_no_href(source):
    html = render(source)
    assert "<a" not in html, html
    assert all("script" not in h.lower() for h in hrefs(html))


@pytest.mark.parametrize(
    "source",
    ["![pixel](data:image/png;base64,iVBORw0KGgo=)", "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"],
)
def test_data_urls_are_refused(source):
    html = render(source)
    assert "data:" not in "".join(hrefs(html)), html
    assert "<img" not in html and "<a" not in html


def test_safe_links_are_kept():
    html = render("[a](https://intranet.example/x) [b](/articles/vpn-connect#steps) [c](mailto:it@example.com) "
                  "[d](tel:+441234) [e](#who-to-contact)")
    assert hrefs(html) == ["https://intranet.example/x", "/articles/vpn-connect#steps", "mailto:it@example.com",
                           "tel:+441234", "#who-to-contact"]


# -- sections and anchors ---------------------------------------------------------------------

BODY = """Intro before any heading.

## Steps

1. One
2. Two

## Steps

Again, a second section with the same heading.

### Как подключиться к VPN

Русский текст.

## Who to contact?

Call the desk.
"""


def test_sections_split_at_headings_with_intro():
    sections = split_sections(BODY, "The title")
    assert [(s.anchor, s.heading, s.level) for s in sections] == [
        ("", "The title", 1),
        ("steps", "Steps", 2),
        ("steps-2", "Steps", 2),
        ("как-подключиться-к-vpn", "Как подключиться к VPN", 3),
        ("who-to-contact", "Who to contact?", 2),
    ]
    assert sections[0].text == "Intro before any heading."
    assert "One" in sections[1].text and "Two" in sections[1].text
    assert sections[2].text.startswith("Again")
    assert sections[3].text == "Русский текст."


def test_no_intro_section_when_body_starts_with_heading():
    sections = split_sections("## Only\n\ntext", "T")
    assert [s.anchor for s in sections] == ["only"]


def test_anchors_are_stable_and_match_rendered_ids():
    first = [s.anchor for s in parse(GOOD, "a.md").sections]
    second = [s.anchor for s in parse(GOOD, "a.md").sections]
    assert first == second == ["", "steps-to-connect", "who-to-contact"]
    html = render(BODY)
    for s in split_sections(BODY, "T"):
        if s.anchor:
            assert f'id="{s.anchor}"' in html
    assert [a for _, a, _ in toc(BODY)] == ["steps", "steps-2", "как-подключиться-к-vpn", "who-to-contact"]


def test_slugify_keeps_cyrillic_readable():
    assert slugify("Ошибка «Your device is not compliant»") == "ошибка-your-device-is-not-compliant"
    assert slugify("Error 0x800CCC0E: can't send") == "error-0x800ccc0e-cant-send"
    assert slugify("???") == "section"


def test_section_heading_is_escaped_in_html():
    html = render("## <script>x</script> heading\n\ntext")
    assert "<script" not in html


# -- the bundled KB ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    return load_dir(ARTICLES)


def test_bundled_articles_load_without_errors(bundled):
    assert [e.message for e in bundled.errors] == []
    assert len(bundled.articles) >= 60
    assert sum(a.locale == "ru" for a in bundled.articles) >= 12
    assert len({a.slug for a in bundled.articles}) == len(bundled.articles)


def test_bundled_articles_have_every_front_matter_key():
    missing = {}
    for path in sorted(ARTICLES.glob("*.md")):
        meta = yaml.safe_load(path.read_text(encoding="utf-8").split("---", 2)[1])
        absent = [k for k in REQUIRED_KEYS if not meta.get(k)]
        if absent:
            missing[path.name] = absent
    assert missing == {}


def test_bundled_articles_have_headed_passages(bundled):
    thin = [a.slug for a in bundled.articles if sum(1 for s in a.sections if s.anchor) < 2]
    assert thin == []


def test_drafts_exist_and_are_not_indexed(bundled, indexed_dir):
    from kb.content.indexer import load_articles
    from search.store import IndexStore

    drafts = {a.slug for a in bundled.articles if a.status == "draft"}
    assert {"parental-leave", "wifi-eduroam"} <= drafts
    served = {a.slug for a in load_articles(IndexStore(indexed_dir / "index").current_path())}
    assert served and not (served & drafts)
    assert served == {a.slug for a in bundled.articles if a.published}
