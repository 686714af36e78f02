"""The article editor's form: what the browser posts, as a Draft, and the page context back.

Every list field is one entry per line (tags may also be comma-separated); translations are
`locale: slug` lines. The form carries the digest of the file it was opened with, the slug it
was opened under and the gap it came from, so a save can refuse a concurrent edit and a replay
knows which misses to run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from kb.content.articles import FIELD_CHARS, STATUSES, parse, render
from kb.content.images import IMAGE_BYTES
from kb.content.source import BODY_CHARS, Draft, to_source
from kb.errors import ValidationError
from kb.staff import auth
from kb.staff.auth import Staff

ACTIONS = ("preview", "replay", "phrases", "upload", "save", "overwrite")
FORM_BYTES = IMAGE_BYTES + 4 * BODY_CHARS + 256 * 1024  # an image, the text in UTF-8, the other fields


@dataclass
class EditForm:
    """A posted editor form: its fields, the ticked example requests and an uploaded image."""

    fields: dict[str, str]
    phrases: list[str] = field(default_factory=list)
    image: tuple[str, bytes] | None = None

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)

    @property
    def action(self) -> str:
        action = self.get("action", "preview")
        return action if action in ACTIONS else "preview"

    @property
    def gap_id(self) -> int | None:
        value = self.get("gap")
        return int(value) if value.isdigit() and 0 < int(value) < 2**63 else None


async def edit_form(request: Request, staff: NamedDependency[Staff]) -> EditForm:
    """The posted form after checking its CSRF token; the image (if any) read into memory."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    auth.check_csrf(staff.csrf, fields.get("csrf_token"))
    upload = form.get("image")
    image = None
    if upload is not None and not isinstance(upload, str) and upload.filename:
        image = (str(upload.filename), await upload.read(IMAGE_BYTES + 1))
    phrases = [p for p in form.getall("phrase", []) if isinstance(p, str) and p.strip()]
    return EditForm(fields, phrases, image)


def _lines(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def draft_of(form: EditForm) -> Draft:
    """The article the form describes (not validated yet: `check` and the parser do that)."""
    tags = tuple(dict.fromkeys(t.strip() for t in re.split(r"[,\n]", form.get("tags")) if t.strip()))
    pairs = []
    for line in _lines(form.get("translations")):
        locale, _, slug = line.partition(":")
        pairs.append((locale.strip(), slug.strip()))
    body = form.get("body").replace("\r\n", "\n").replace("\r", "\n")
    return Draft(title=form.get("title").strip(), slug=form.get("slug").strip().lower(),
                 category=form.get("category").strip().lower() or "general", locale=form.get("locale").strip(),
                 status=form.get("status", "draft").strip(), body=body, tags=tags,
                 aliases=_lines(form.get("aliases")), translations=tuple(sorted(pairs)),
                 redirect_from=_lines(form.get("redirect_from")), updated=form.get("updated").strip())


def form_values(draft: Draft) -> dict[str, str]:
    """A draft as the form's text fields."""
    return {"title": draft.title, "slug": draft.slug, "category": draft.category, "locale": draft.locale,
            "status": draft.status, "body": draft.body, "tags": ", ".join(draft.tags),
            "aliases": "\n".join(draft.aliases), "redirect_from": "\n".join(draft.redirect_from),
            "translations": "\n".join(f"{loc}: {slug}" for loc, slug in draft.translations),
            "updated": draft.updated}


def with_phrases(draft: Draft, phrases: list[str]) -> Draft:
    """The draft with the ticked example requests added to its aliases (each once)."""
    known = {a.lower() for a in draft.aliases}
    added = [p.strip() for p in phrases if p.strip().lower() not in known]
    return Draft(**{**draft.__dict__, "aliases": tuple(dict.fromkeys([*draft.aliases, *added]))})


def preview_html(draft: Draft) -> str:
    """The body rendered exactly as the portal renders it (raw HTML off, safe link schemes only)."""
    return render(draft.body)


def trial_article(draft: Draft):  # -> Article
    """The draft as the indexer would read it, published (ArticleError if it would not load)."""
    return parse(to_source(Draft(**{**draft.__dict__, "status": "published"})), f"{draft.slug or 'new'}.md")


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Field -> message, for the form's inline errors."""
    return {e.get("key", ""): e.get("message", "") for e in exc.errors}


def page_context(staff: Staff, draft: Draft, *, digest: str = "", original: str = "", **extra: Any) -> dict[str, Any]:
    """What the edit page needs besides the staff member."""
    return {"values": form_values(draft), "digest": digest, "original": original, "statuses": STATUSES,
            "image_mb": IMAGE_BYTES // 1024 // 1024, "body_chars": BODY_CHARS,
            "field_chars": FIELD_CHARS, **extra}
