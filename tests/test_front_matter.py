"""Hostile front matter (issue 17, finding 2): a YAML alias bomb or an oversized file is one more
broken article, reported with its file and line, and every other article still loads and indexes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.content.articles import load_dir, parse
from kb.errors import ArticleError

ROOT = Path(__file__).resolve().parents[1]
GOOD = "---\ntitle: {title}\nslug: {slug}\ncategory: test\nlocale: en\ntags: [a, b]\n---\n\nSome text about {title}.\n"
NAMES = "abcdefghijklmnop"
# The bounds kb.content.articles documents (FRONT_MATTER_CHARS, VALUE_CHARS, FRONT_MATTER_VALUES).
FRONT_MATTER_CHARS, VALUE_CHARS, FRONT_MATTER_VALUES = 16_384, 1_000, 500


def bomb(levels: int) -> str:
    """The issue's article: each anchor is a list of nine aliases of the one before; the title is the last."""
    lines = ["---", 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels):
        lines.append(f"{NAMES[n]}: &{NAMES[n]} [{', '.join(['*' + NAMES[n - 1]] * 9)}]")
    lines += [f"title: *{NAMES[levels - 1]}", "slug: bomb", "---", "", "Body."]
    return "\n".join(lines) + "\n"


# The load runs in a child process under a 1 GiB address-space cap and a time limit: before the
# fix the six-level bomb took 1.6 GB and 9 s, one more level 11.7 GB and more than 120 s.
CHILD = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from kb.content.articles import load_dir
    result = load_dir(sys.argv[1])
    print(json.dumps({"slugs": sorted(a.slug for a in result.articles),
                      "errors": [[e.path, e.line, e.message] for e in result.errors]}))
""")


@pytest.mark.parametrize("levels", [6, 7, 9])
def test_alias_bomb_is_a_broken_file_and_the_others_load(tmp_path, levels):
    (tmp_path / "bomb.md").write_text(bomb(levels))
    assert len((tmp_path / "bomb.md").read_bytes()) < 600
    for slug in ("first", "second"):
        (tmp_path / f"{slug}.md").write_text(GOOD.format(title=slug.title(), slug=slug))
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["slugs"] == ["first", "second"]
    [(path, line, message)] = result["errors"]
    assert (path, line) == ("bomb.md", 2)  # the first anchor, on the file's second line
    assert "anchors or aliases" in message and message.startswith("bomb.md:2:")


@pytest.mark.parametrize("front, line, words", [
    ('title: &t "VPN"\nslug: x', 2, "anchors or aliases"),
    ("base: &b {category: network}\ntitle: VPN\n<<: *b", 2, "anchors or aliases"),
    ("title: VPN\ncategory: *nowhere", 3, "anchors or aliases"),
    ("title: " + "x" * (VALUE_CHARS + 1), 2, f"limit is {VALUE_CHARS:,}"),
    ("title: VPN\ntags:\n  - ok\n  - " + "t" * (VALUE_CHARS + 1), 5, f"limit is {VALUE_CHARS:,}"),
    ("title: VPN\ntags: " + json.dumps(["t"] * FRONT_MATTER_VALUES), 3, f"more than {FRONT_MATTER_VALUES}"),
    ("title: VPN\ntags: [[[[deep]]]]", 3, "nests deeper"),
    ("title: VPN\nnotes: |\n" + "  a line of notes\n" * 1100, 1, f"limit is {FRONT_MATTER_CHARS:,}"),
])
def test_hostile_front_matter_is_reported_with_file_and_line(front, line, words):
    with pytest.raises(ArticleError) as caught:
        parse(f"---\n{front}\n---\n\nBody.\n", "hostile.md")
    assert caught.value.path == "hostile.md" and caught.value.line == line, caught.value.message
    assert words in caught.value.message


def test_an_oversized_file_is_reported_not_parsed():
    with pytest.raises(ArticleError, match="limit is 1,000,000"):
        parse("---\ntitle: Big\n---\n\n" + "word " * 250_000, "big.md")


def test_ordinary_front_matter_still_parses():
    article = parse(textwrap.dedent("""\
        ---
        title: "Reset your password: step by step"
        slug: reset-password
        category: accounts
        locale: en
        tags: [password, "sign-in", 2fa]
        aliases:
          - forgot my password
          - can't log in
        updated: 2026-01-31
        ---

        Go to the portal.
        """), "reset-password.md")
    assert article.title == "Reset your password: step by step"
    assert article.tags == ("password", "sign-in", "2fa") and article.aliases[1] == "can't log in"


def test_the_bounds_are_the_documented_ones():
    from kb.content import articles

    assert (articles.FRONT_MATTER_CHARS, articles.VALUE_CHARS, articles.FRONT_MATTER_VALUES) == (
        FRONT_MATTER_CHARS, VALUE_CHARS, FRONT_MATTER_VALUES)


def test_every_bundled_article_is_within_the_bounds():
    result = load_dir(ROOT / "articles")
    assert result.errors == [] and len(result.articles) >= 60


def test_kb_index_skips_the_bomb_and_indexes_the_rest(tmp_path, monkeypatch, embedder):
    from kb.cli import main

    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "bomb.md").write_text(bomb(4))  # small enough to be harmless where it is not refused
    for slug in ("first", "second"):
        (articles / f"{slug}.md").write_text(GOOD.format(title=slug.title(), slug=slug))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("kb.content.indexer.make_embedder", lambda settings: embedder)
    for name in ("KB_DATA", "KB_ARTICLES", "KB_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["index", "--quiet", "--articles", str(articles), "--data", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "skipped bomb.md:2: front matter may not use YAML anchors or aliases" in result.output
    assert "Indexed 2 articles" in result.output and "1 files skipped" in result.output
