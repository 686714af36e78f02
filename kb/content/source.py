"""An article as the editor's form holds it, and back to the Markdown a writer would type.

`Draft` is the front matter as fields plus the body. `to_source` writes it the way the bundled
articles are written (keys in a fixed order, tags on one line, aliases as an indented block list,
double quotes only where YAML needs them); keys the editor has no field for are kept after them.
A draft whose fields did not change keeps its front matter byte for byte.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from kb.content.articles import FIELD_CHARS, LOCALE, SLUG, STATUSES, front_matter, parse
from kb.errors import ArticleError, ValidationError

KNOWN = ("title", "slug", "category", "tags", "locale", "translations", "status", "updated", "aliases",
         "redirect_from")
BODY_CHARS = 200_000  # the longest article body the editor accepts
LIST_ITEMS = 200  # the most tags, aliases or translations one article may have


@dataclass(frozen=True)
class Draft:
    """An article's front matter fields and body, as the editor's form holds them."""

    title: str
    slug: str
    category: str = "general"
    locale: str = "en"
    status: str = "draft"
    body: str = ""
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    translations: tuple[tuple[str, str], ...] = ()
    redirect_from: tuple[str, ...] = ()
    updated: str = ""
    extra: tuple[tuple[str, Any], ...] = field(default=(), compare=False)  # other keys, kept as they were

    def same_content(self, other: "Draft") -> bool:
        """Whether two drafts would make the same article, whatever their `updated` date."""
        return replace(self, updated="") == replace(other, updated="") and self.extra == other.extra


def digest(source: str | bytes) -> str:
    """The SHA-256 of a file's text, as the editor's form carries it to detect concurrent edits."""
    data = source.encode() if isinstance(source, str) else source
    return hashlib.sha256(data).hexdigest()


def from_source(source: str, path: str) -> Draft:
    """The draft of an article file's text (ArticleError if it does not parse)."""
    article = parse(source, path)
    meta, _raw, body = front_matter(source, path)
    return Draft(title=article.title, slug=article.slug, category=article.category, locale=article.locale,
                 status=article.status, body=body, tags=article.tags, aliases=article.aliases,
                 translations=article.translations, redirect_from=article.redirect_from, updated=article.updated,
                 extra=tuple((str(k), v) for k, v in meta.items() if k not in KNOWN))


def check(draft: Draft) -> None:
    """ValidationError naming each field a writer got wrong."""
    errors = []

    def bad(key: str, message: str) -> None:
        errors.append({"key": key, "message": message})

    if not draft.title.strip():
        bad("title", "give the article a title")
    if not SLUG.match(draft.slug):
        bad("slug", "use lowercase letters, digits and hyphens, like reset-password")
    if not SLUG.match(draft.category):
        bad("category", "use lowercase letters, digits and hyphens, like accounts")
    if not LOCALE.match(draft.locale):
        bad("locale", "a language code such as en or ru")
    if draft.status not in STATUSES:
        bad("status", f"one of {', '.join(STATUSES)}")
    if len(draft.body) > BODY_CHARS:
        bad("body", f"the text is {len(draft.body)} characters long; the limit is {BODY_CHARS}")
    for key in ("title", "slug", "category"):
        if len(getattr(draft, key)) > FIELD_CHARS:
            bad(key, f"at most {FIELD_CHARS} characters")
    for key in ("tags", "aliases", "translations"):
        values = getattr(draft, key)
        if len(values) > LIST_ITEMS:
            bad(key, f"at most {LIST_ITEMS} entries")
        if any(len(str(v)) > FIELD_CHARS for v in values):
            bad(key, f"each entry at most {FIELD_CHARS} characters")
    for loc, slug in draft.translations:
        if not LOCALE.match(loc) or not SLUG.match(slug) or loc == draft.locale or slug == draft.slug:
            bad("translations", f"one 'locale: slug' per line for another language's article, not {loc}: {slug}")
            break
    if errors:
        raise ValidationError(errors, message="Some fields need fixing: " + "; ".join(
            f"{e['key']}: {e['message']}" for e in errors))


class _Emitter(yaml.SafeDumper):
    """Block style with indented block lists and double quotes where quoting is needed."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # never write anchors: the parser refuses them

    def choose_scalar_style(self) -> str:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


class _Flow(list):
    """A list written on one line, as `tags: [a, b]`."""


class _FlowMap(dict):
    """A mapping written on one line, as `translations: {en: reset-password}`."""


_Emitter.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_Emitter.add_representer(_FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))


def to_source(draft: Draft, previous: str | None = None) -> str:
    """The article file's text; the previous file's front matter is kept when no field changed."""
    body = draft.body.replace("\r\n", "\n").replace("\r", "\n").strip("\n") + "\n"
    if previous is not None:
        try:
            old = from_source(previous, "<previous>")
            _meta, raw, _body = front_matter(previous)
        except ArticleError:
            old = None
        if old is not None and replace(old, body="") == replace(draft, body="") and old.extra == draft.extra:
            return "---" + raw + "---\n" + body
    meta: dict[str, Any] = {"title": draft.title.strip(), "slug": draft.slug, "category": draft.category}
    if draft.tags:
        meta["tags"] = _Flow(draft.tags)
    meta["locale"] = draft.locale
    if draft.translations:
        meta["translations"] = _FlowMap(draft.translations)
    meta["status"] = draft.status
    if draft.updated:
        meta["updated"] = dt.date.fromisoformat(draft.updated)
    if draft.aliases:
        meta["aliases"] = list(draft.aliases)
    if draft.redirect_from:
        meta["redirect_from"] = list(draft.redirect_from)
    meta.update(dict(draft.extra))
    text = yaml.dump(meta, Dumper=_Emitter, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=10_000)
    return "---\n" + text + "---\n" + body


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff of two article texts ('' when they are the same)."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=old_name, tofile=new_name))
