"""Markdown articles with YAML front matter: parsing, validation, safe rendering, passages."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from kb.errors import ArticleError

# libyaml's safe loader when PyYAML was built with it: same documents, ~10x faster on 10k files
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
LOCALE = re.compile(r"^[a-z]{2}(?:-[A-Za-z]{2})?$")
STATUSES = ("published", "draft", "archived")  # drafts and archived articles are never served
# Front matter is a handful of short fields. These bounds make a hostile file (a YAML alias bomb
# expands 296 bytes into gigabytes) one more broken file, reported with its line, like any other.
ARTICLE_CHARS = 1_000_000
FRONT_MATTER_CHARS = 16_384
VALUE_CHARS = 1_000  # each value: a title, a tag, an alias
FIELD_CHARS = VALUE_CHARS  # the editor's form holds each field to the same bound
FRONT_MATTER_VALUES = 500
FRONT_MATTER_DEPTH = 3  # the mapping, a list or mapping in it, and one more level
SAFE_SCHEMES = ("http:", "https:", "mailto:", "tel:")


@dataclass(frozen=True)
class Section:
    """A passage of an article: the text under one heading, with its deep-link anchor."""

    anchor: str
    heading: str
    level: int
    text: str


@dataclass(frozen=True)
class Article:
    """One help article, parsed and validated."""

    slug: str
    title: str
    category: str
    locale: str
    status: str
    updated: str
    body: str
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    path: str = ""
    sections: tuple[Section, ...] = field(default=(), compare=False)
    # (locale, slug) of the same article in other languages, from `translations:` in front matter
    translations: tuple[tuple[str, str], ...] = ()
    redirect_from: tuple[str, ...] = ()  # earlier slugs: their URLs redirect here

    @property
    def published(self) -> bool:
        return self.status == "published"

    def translation(self, locale: str) -> str | None:
        """The slug of this article in another language, if the writer declared one."""
        return next((slug for loc, slug in self.translations if loc == locale), None)

    def section(self, anchor: str) -> Section | None:
        return next((s for s in self.sections if s.anchor == anchor), None)


def _validate_link(url: str) -> bool:
    """Allow relative links and an allow-list of schemes; refuse javascript:, data: and the rest."""
    value = url.strip().lower()
    if ":" not in value.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]:
        return True
    return value.startswith(SAFE_SCHEMES)


def markdown() -> MarkdownIt:
    """A CommonMark renderer with raw HTML off, tables on and only safe link schemes."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = _validate_link  # type: ignore[method-assign]
    return md


_MD = markdown()


def slugify(text: str) -> str:
    """A URL anchor for a heading; Cyrillic is kept, so Russian anchors stay readable."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s-]", "", text, flags=re.UNICODE)
    return re.sub(r"[\s_-]+", "-", text).strip("-") or "section"


def front_matter(source: str, path: str = "<string>") -> tuple[dict, str, str]:
    """(front matter mapping, its raw YAML, the Markdown body) of an article file's text.

    The YAML is size-limited and may not use anchors or aliases: a few nested aliases expand a
    300-byte file into gigabytes (a "billion laughs"), and no article needs them.
    """
    if len(source) > ARTICLE_CHARS:
        raise ArticleError(path, f"the file is {len(source):,} characters long; the limit is {ARTICLE_CHARS:,}", 1)
    if not source.startswith("---"):
        raise ArticleError(path, "missing YAML front matter (the file must start with ---)", 1)
    end = re.search(r"^---\s*$", source[3:], flags=re.MULTILINE)
    if not end:
        raise ArticleError(path, "front matter is not closed with ---", 1)
    raw = source[3 : 3 + end.start()]
    body = source[3 + end.end() :].lstrip("\n")
    try:
        _check_front_matter(raw, path)
        meta = yaml.load(raw, Loader=SAFE_LOADER) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ArticleError(path, f"invalid YAML front matter: {problem}", line) from exc
    if not isinstance(meta, dict):
        raise ArticleError(path, "front matter must be a mapping of keys to values", 2)
    return meta, raw, body


def parse(source: str, path: str = "<string>") -> Article:
    """Parse one article file's text; raise ArticleError naming the file and line."""
    meta, raw, body = front_matter(source, path)
    lines = {m.group(1): raw[: m.start()].count("\n") + 1 for m in re.finditer(r"^(\w+)\s*:", raw, re.MULTILINE)}

    def fail(key: str, message: str) -> ArticleError:
        return ArticleError(path, message, lines.get(key, 1))

    title = str(meta.get("title") or "").strip()
    if not title:
        raise fail("title", "missing title in front matter")
    slug = str(meta.get("slug") or Path(path).stem).strip()
    if not SLUG.match(slug):
        raise fail("slug", f"invalid slug {slug!r}: use lowercase letters, digits and hyphens")
    locale = str(meta.get("locale") or "en").strip()
    if not LOCALE.match(locale):
        raise fail("locale", f"invalid locale {locale!r}")
    status = str(meta.get("status") or "published").strip()
    if status not in STATUSES:
        raise fail("status", f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    updated = meta.get("updated") or ""
    if isinstance(updated, (dt.date, dt.datetime)):
        updated = updated.isoformat()[:10]
    elif updated:
        try:
            updated = dt.date.fromisoformat(str(updated)).isoformat()
        except ValueError:
            raise fail("updated", f"updated must be a date like 2026-01-31, not {updated!r}") from None
    return Article(
        slug=slug,
        title=title,
        category=str(meta.get("category") or "general").strip().lower(),
        locale=locale,
        status=status,
        updated=str(updated),
        body=body,
        tags=_strings(meta.get("tags"), fail("tags", "tags must be a list of strings")),
        aliases=_strings(meta.get("aliases"), fail("aliases", "aliases must be a list of strings")),
        path=path,
        sections=tuple(split_sections(body, title)),
        translations=_translations(meta.get("translations"), locale, slug, fail),
        redirect_from=_redirects(meta.get("redirect_from"), slug, fail("redirect_from", "redirect_from must be a list of slugs")),
    )


def _translations(value: object, locale: str, slug: str, fail) -> tuple[tuple[str, str], ...]:
    """`translations: {en: vpn-connect}`: another locale's slug for the same article, one per locale."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise fail("translations", "translations must be a mapping of locale to slug, like {en: vpn-connect}")
    out = []
    for loc, other in value.items():
        loc, other = str(loc).strip(), str(other or "").strip()
        if not LOCALE.match(loc):
            raise fail("translations", f"translations: invalid locale {loc!r}")
        if loc == locale:
            raise fail("translations", f"translations: {loc!r} is this article's own locale")
        if not SLUG.match(other) or other == slug:
            raise fail("translations", f"translations: {loc!r} needs the slug of another article, not {other!r}")
        out.append((loc, other))
    return tuple(sorted(out))


def _check_front_matter(raw: str, path: str) -> None:
    """Refuse, before anything is built from it, front matter that is too large, too deep, or
    uses anchors and aliases (the parser's events are read; no alias is ever expanded).

    Lines in the errors are the file's: `raw` starts on the line of the opening `---`.
    """
    if len(raw) > FRONT_MATTER_CHARS:
        size = f"{len(raw):,} characters long; the limit is {FRONT_MATTER_CHARS:,}"
        raise ArticleError(path, f"front matter is {size}", 1)
    depth = values = 0
    for event in yaml.parse(raw, Loader=SAFE_LOADER):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ArticleError(path, "front matter may not use YAML anchors or aliases (&name, *name)", line)
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > FRONT_MATTER_DEPTH:
                raise ArticleError(path, f"front matter nests deeper than {FRONT_MATTER_DEPTH} levels", line)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.ScalarEvent):
            values += 1
            if len(event.value) > VALUE_CHARS:
                size = f"{len(event.value):,} characters long; the limit is {VALUE_CHARS:,}"
                raise ArticleError(path, f"a front matter value is {size}", line)
            if values > FRONT_MATTER_VALUES:
                raise ArticleError(path, f"front matter holds more than {FRONT_MATTER_VALUES} values", line)


def _redirects(value: object, slug: str, error: ArticleError) -> tuple[str, ...]:
    """`redirect_from:` the slugs this article had before: valid slugs other than its own."""
    old = _strings(value, error)
    if any(not SLUG.match(s) or s == slug for s in old):
        raise error
    return tuple(dict.fromkeys(old))

def _strings(value: object, error: ArticleError) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise error
    return tuple(str(v).strip() for v in value if str(v).strip())


def _heading_anchors(tokens: list[Token]) -> None:
    """Give every heading a unique id: the anchors of passages and of the table of contents."""
    seen: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            base = slugify(tokens[i + 1].content)
            n = seen.get(base, 0)
            seen[base] = n + 1
            tok.attrSet("id", base if n == 0 else f"{base}-{n + 1}")


def render(body: str) -> str:
    """Render Markdown to safe HTML with heading anchors."""
    tokens = _MD.parse(body)
    _heading_anchors(tokens)
    return _MD.renderer.render(tokens, _MD.options, {})


def toc(body: str) -> list[tuple[int, str, str]]:
    """(level, anchor, heading) of the ## and ### headings, for a table of contents."""
    tokens = _MD.parse(body)
    _heading_anchors(tokens)
    return [
        (int(tok.tag[1]), str(tok.attrGet("id") or ""), tokens[i + 1].content)
        for i, tok in enumerate(tokens)
        if tok.type == "heading_open" and tok.tag in ("h2", "h3")
    ]


def split_sections(body: str, title: str) -> list[Section]:
    """Split an article into passages at its headings; the text before the first is the intro."""
    tokens = _MD.parse(body)
    _heading_anchors(tokens)
    sections: list[Section] = []
    anchor, heading, level, parts = "", title, 1, []  # type: ignore[var-annotated]
    prefix: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            if parts or anchor:
                sections.append(Section(anchor, heading, level, _join(parts)))
            anchor, heading, level, parts = str(tok.attrGet("id") or ""), tokens[i + 1].content, int(tok.tag[1]), []
            i += 3
            continue
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            prefix.append("1." if tok.type == "ordered_list_open" else "-")
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            prefix.pop()
        elif tok.type == "inline":
            text = _inline_text(tok)
            in_item = prefix and tokens[i - 1].type == "paragraph_open" and tokens[i - 2].type == "list_item_open"
            parts.append(f"{prefix[-1]} {text}" if in_item else text)
        elif tok.type in ("fence", "code_block"):
            parts.append(tok.content.strip())
        i += 1
    if parts or anchor or not sections:
        sections.append(Section(anchor, heading, level, _join(parts)))
    kept = [s for s in sections if s.text or s.anchor]
    return kept or [Section("", title, 1, "")]  # every article is at least one passage


def _inline_text(tok: Token) -> str:
    out = []
    for child in tok.children or []:
        if child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type in ("text", "code_inline"):
            out.append(child.content)
    return "".join(out).strip()


def _join(parts: list[str]) -> str:
    out: list[str] = []
    for part in parts:
        if not part:
            continue
        # list items sit on their own lines; paragraphs are separated by a blank line
        prev = out[-1].lstrip("\n")[:2] if out else ""
        sep = "\n" if part[:2] in ("- ", "1.") and prev in ("- ", "1.") else "\n\n"
        out.append(sep + part if out else part)
    return "".join(out).strip()


@dataclass(frozen=True)
class Unchanged:
    """A published article whose file is as the live build holds it: neither read again nor parsed."""

    slug: str
    path: str
    published: bool = True  # only published articles are stamped


@dataclass(frozen=True)
class Stamp:
    """What the live build recorded of one published article's file."""

    digest: str
    size: int
    mtime_ns: int
    slug: str


@dataclass
class LoadResult:
    """Articles that parsed (or are unchanged), and the errors of those that did not."""

    articles: list[Article | Unchanged]
    errors: list[ArticleError]
    digests: dict[str, str] = field(default_factory=dict)  # file name -> SHA-256 of its source
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)  # file name -> (size, mtime_ns)


# An unchanged file is not parsed again: bump this whenever parsing or rendering changes, so
# every file is parsed again once.
PARSER = "4"  # 2: translations; 3: anchors and aliases refused, sizes bounded; 4: redirect_from, archived
# A file modified this close to the scan that stamped it may have changed again within the file
# system's time stamp granularity, unseen: its content is checked instead (git's "racy" rule).
RACY_NS = 2_000_000_000


def source_digest(source: str) -> str:
    return hashlib.sha256(f"{PARSER}\0{source}".encode()).hexdigest()


def load_dir(directory: Path, stamps: Mapping[str, Stamp] | None = None, stamped_at: int = 0) -> LoadResult:
    """Load every *.md under a directory; a bad file is reported and the rest still load.

    `stamps` are what the live build recorded of its published files, looked at from `stamped_at`
    (ns) on. A file with the same size and modification time is not read, unless it was modified
    within RACY_NS of being stamped; one whose content has the same digest is not parsed. Either
    comes back as `Unchanged`.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ArticleError(str(directory), "articles directory does not exist")
    articles: list[Article | Unchanged] = []
    errors: list[ArticleError] = []
    digests: dict[str, str] = {}
    stats: dict[str, tuple[int, int]] = {}
    by_slug: dict[str, Article | Unchanged] = {}
    stamps = stamps or {}
    for name, path in markdown_files(directory):
        try:
            st = os.stat(path)
            stamp = stamps.get(name)
            stats[name] = (st.st_size, st.st_mtime_ns)
            if stamp and (stamp.size, stamp.mtime_ns) == stats[name] and st.st_mtime_ns < stamped_at - RACY_NS:
                article: Article | Unchanged = Unchanged(stamp.slug, name)
                digests[name] = stamp.digest
            else:
                with open(path, encoding="utf-8") as fh:
                    source = fh.read()
                digests[name] = source_digest(source)
                same = stamp is not None and stamp.digest == digests[name]
                article = Unchanged(stamp.slug, name) if same else parse(source, name)  # type: ignore[union-attr]
        except UnicodeDecodeError:
            errors.append(ArticleError(name, "file is not valid UTF-8"))
            continue
        except OSError as exc:
            errors.append(ArticleError(name, f"cannot be read: {exc.strerror or exc}"))
            continue
        except ArticleError as exc:
            errors.append(exc)
            continue
        if article.slug in by_slug:
            errors.append(ArticleError(name, f"duplicate slug {article.slug!r} (also in {by_slug[article.slug].path})", 1))
            continue
        by_slug[article.slug] = article
        articles.append(article)
    return LoadResult(articles, errors, digests, stats)


def markdown_files(directory: Path) -> list[tuple[str, str]]:
    """(name relative to directory, path) of every *.md below it but README.md, in path order.

    One scandir per directory: about 7x faster than Path.rglob plus Path.stat on 10k files.
    """
    found: list[tuple[tuple[str, ...], str]] = []
    root = os.stat(directory)
    pending, seen = [str(directory)], {(root.st_dev, root.st_ino)}
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():  # followed through symbolic links, once each, like Path.rglob
                    st = entry.stat()
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        pending.append(entry.path)
                elif entry.name.endswith(".md") and entry.name.lower() != "readme.md":
                    found.append((tuple(os.path.relpath(entry.path, directory).split(os.sep)), entry.path))
    return [(os.sep.join(parts), path) for parts, path in sorted(found)]
