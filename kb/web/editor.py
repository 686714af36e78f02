"""The article editor for writers and owners (/admin/articles), the audit log for owners
(/admin/audit), and the images articles link to (/articles/images/NAME).

Every write goes through kb/content/editor.py (`Editor`, on app.state); this module parses the
form, calls it, records the audit row and renders the page. The edit page works without
JavaScript: one form, and its buttons (preview, add phrasings, upload, replay, save) post it
back with the writer's text kept.
"""

from __future__ import annotations

from typing import Any

from litestar import Response, Router, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from kb.clock import iso
from kb.content.articles import SLUG, ArticleError
from kb.content.editor import ConflictError, Editor, Saved, new_draft
from kb.content.history import HistoryError
from kb.content.images import image_path, image_type
from kb.content.source import Draft, unified_diff
from kb.errors import AuthError, NotFoundError, ValidationError
from kb.insight import board, gaps
from kb.insight.helpfulness import helpfulness
from kb.staff.auth import Staff
from kb.storage import audit
from kb.web.admin import _DEPS, _csv, _page, posted, to_login
from kb.web.editform import (FORM_BYTES, EditForm, draft_of, edit_form, field_errors, page_context, preview_html,
                             trial_article, with_phrases)

StaffDep = NamedDependency[Staff]
FormDep = NamedDependency[EditForm]
Fields = NamedDependency[dict[str, str]]
Query = FromQuery[str | None]
GapQuery = FromQuery[int | None]
LIST_LIMIT = 500
IMAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; sandbox", "X-Content-Type-Options": "nosniff",
                 "Cache-Control": "public, max-age=300"}


def _actor(staff: Staff) -> audit.Actor:
    return audit.Actor(staff.user_id, staff.email)


def _gap(state: State, gap_id: int | None) -> dict[str, Any] | None:
    """The gap a writer came from, with its example requests, for the panel beside the editor."""
    if gap_id is None:
        return None
    gap = board.get_gap(state["db"], gap_id)
    examples = [{**m.__dict__, "when": iso(m.ts)} for m in board.examples(state["db"], gap_id, limit=50)]
    return {**gap.as_dict(), "examples": examples, "kinds": gaps.KINDS}


def _edit_page(state: State, staff: Staff, draft: Draft, *, status_code: int = 200, gap_id: int | None = None,
               **extra: Any) -> Template:
    editor: Editor = state["editor"]
    editor.check_source()  # a replica's editor refuses: even a blank form would save nowhere
    extra.setdefault("preview", preview_html(draft))
    return _page("article_edit", staff, status_code=status_code, gap=_gap(state, gap_id), git=editor.history is not None,
                 rebuild_error=state["rebuilder"].last_error, replay_top=board.REPLAY_TOP,
                 **page_context(staff, draft, **extra))


# -- list ---------------------------------------------------------------------------------------


@get("/articles", sync_to_thread=True)
def article_list(state: State, staff: StaffDep, q: Query = None, category: Query = None, locale: Query = None,
                 status: Query = None) -> Template:
    """Every article file (drafts and archived too) with its helpfulness, searchable and filterable."""
    items, errors = state["editor"].listing()
    needle = (q or "").strip().lower()
    shown = [a for a in items if (not category or a.category == category) and (not locale or a.locale == locale)
             and (not status or a.status == status)
             and (not needle or needle in " ".join((a.title, a.slug, *a.aliases, *a.tags)).lower())]
    shown.sort(key=lambda a: a.updated, reverse=True)
    return _page("articles", staff, articles=shown[:LIST_LIMIT], total=len(shown), limit=LIST_LIMIT, errors=errors,
                 helpful=helpfulness(state["db"]), categories=sorted({a.category for a in items}),
                 locales=state["settings"].locales, statuses=("published", "draft", "archived"),
                 filters={"q": q or "", "category": category or "", "locale": locale or "", "status": status or ""})


# -- create and edit ----------------------------------------------------------------------------


@get("/articles/new", sync_to_thread=True)
def article_new(state: State, staff: StaffDep, gap: GapQuery = None) -> Template:
    """A blank draft; from a gap, prefilled with its suggested title, key terms and locale."""
    draft = new_draft()
    if gap is not None:
        g = board.get_gap(state["db"], gap)
        draft = new_draft(g.label[:1].upper() + g.label[1:], g.locale)
        draft = Draft(**{**draft.__dict__, "tags": tuple(g.key_terms)})
    return _edit_page(state, staff, draft, gap_id=gap, mode="new")


@get("/articles/{slug:str}/edit", sync_to_thread=True)
def article_edit(state: State, staff: StaffDep, slug: FromPath[str], gap: GapQuery = None,
                 saved: Query = None) -> Template:
    """An article's form, opened with the digest of its file as it is now."""
    opened = state["editor"].open(_slug(slug))
    return _edit_page(state, staff, opened.draft, gap_id=gap, digest=opened.digest, original=opened.draft.slug,
                      mode="edit", saved=saved or "", filename=opened.name)


@post("/articles/new", sync_to_thread=True, dependencies={"form": Provide(edit_form)}, request_max_body_size=FORM_BYTES)
def article_create(state: State, staff: StaffDep, form: FormDep) -> Template | Redirect:
    """Preview, add phrasings, upload, replay or save a new article."""
    return _submit(state, staff, form, "")


@post("/articles/{slug:str}/edit", sync_to_thread=True, dependencies={"form": Provide(edit_form)},
      request_max_body_size=FORM_BYTES)
def article_update(state: State, staff: StaffDep, slug: FromPath[str], form: FormDep) -> Template | Redirect:
    """Preview, add phrasings, upload, replay or save an article being edited."""
    return _submit(state, staff, form, _slug(slug))


def _submit(state: State, staff: Staff, form: EditForm, original: str) -> Template | Redirect:
    """One press of a button on the edit page."""
    draft = draft_of(form)
    extra: dict[str, Any] = {"digest": form.get("digest"), "original": original,
                                    "mode": "edit" if original else "new", "filename": form.get("name")}
    try:
        if form.action in ("save", "overwrite"):
            return _save(state, staff, form, draft, original)
        if form.action == "phrases":
            draft = with_phrases(draft, form.phrases)
            extra["notice"] = f"Added {len(form.phrases)} phrasing(s) to the aliases: save to keep them."
        elif form.action == "upload":
            draft, extra["notice"] = _upload(state, staff, form, draft)
        elif form.action == "replay":
            extra["replay"] = _replay(state, form, draft, original)
    except ConflictError as exc:
        return _edit_page(state, staff, draft, status_code=409, gap_id=form.gap_id, **{
            **extra, "error": exc.message, "conflict": exc.diff, "disk_digest": exc.current})
    except ValidationError as exc:
        return _edit_page(state, staff, draft, status_code=422, gap_id=form.gap_id,
                          **{**extra, "error": exc.message, "field_errors": field_errors(exc)})
    except (ArticleError, HistoryError) as exc:
        return _edit_page(state, staff, draft, status_code=exc.status_code if exc.status_code < 500 else 422,
                          gap_id=form.gap_id, **{**extra, "error": exc.message})
    return _edit_page(state, staff, draft, gap_id=form.gap_id, **extra)


def _save(state: State, staff: Staff, form: EditForm, draft: Draft, original: str) -> Redirect:
    """Write the article, record what happened, link the gap it came from; back to its page."""
    digest = form.get("disk_digest") if form.action == "overwrite" else form.get("digest")
    saved = state["editor"].save(draft, opened_digest=digest, original=original, author=staff.email)
    _audit(state, staff, saved)
    if form.gap_id is not None and draft.status == "published":
        gap = board.get_gap(state["db"], form.gap_id)
        if gap.linked_slug != saved.slug:
            board.link_gap(state["db"], state["desk"], form.gap_id, saved.slug)
            audit.record(state["db"], _actor(staff), "gap-link", article=saved.slug, gap_id=form.gap_id)
    urls = state["settings"].urls
    return Redirect(urls.article_edit(saved.slug, gap=form.gap_id, saved="1" if saved.actions else "same"),
                    status_code=303)


def _audit(state: State, staff: Staff, saved: Saved) -> None:
    for action in saved.actions:
        detail = f"{saved.renamed_from} -> {saved.slug}" if action == "rename" else saved.name
        audit.record(state["db"], _actor(staff), action, article=saved.slug,
                     detail=detail + (f" (commit {saved.revision[:12]})" if saved.revision else ""))


def _upload(state: State, staff: Staff, form: EditForm, draft: Draft) -> tuple[Draft, str]:
    """Store the uploaded image and add a Markdown link to it at the end of the text."""
    if form.image is None:
        raise ValidationError([{"key": "image", "message": "choose an image file first"}],
                              message="Choose an image file to upload first.")
    image = state["editor"].upload(*form.image, author=staff.email)
    if image.created:
        audit.record(state["db"], _actor(staff), "upload", article=draft.slug, detail=f"images/{image.name}")
    alt = (form.get("image_alt") or image.name.rsplit(".", 1)[0]).replace("]", "").replace("\n", " ").strip()
    link = f"![{alt}]({state['settings'].urls.article_image(image.name)})"
    body = draft.body.rstrip("\n") + "\n\n" + link + "\n"
    return Draft(**{**draft.__dict__, "body": body}), f"Uploaded images/{image.name}; its link is at the end of the text."


def _replay(state: State, form: EditForm, draft: Draft, original: str) -> board.Replay:
    """The gap's misses against a trial build holding the unsaved text (the live index untouched)."""
    if form.gap_id is None:
        raise ValidationError([{"key": "gap", "message": "open the editor from a gap to replay its misses"}],
                              message="Open the editor from a gap to replay its misses.")
    replaces = (original,) if original and original != draft.slug else ()
    return board.preview(state["db"], state["desk"], form.gap_id, trial_article(draft), replaces)


# -- status, history ----------------------------------------------------------------------------


@post("/articles/{slug:str}/status", sync_to_thread=True, dependencies={"fields": Provide(posted)})
def article_status(state: State, staff: StaffDep, slug: FromPath[str], fields: Fields) -> Template | Redirect:
    """Archive (recoverable, never served), restore to draft, or publish."""
    slug = _slug(slug)
    try:
        saved = state["editor"].set_status(slug, fields.get("status", ""), opened_digest=fields.get("digest", ""),
                                           author=staff.email)
    except (ConflictError, ValidationError) as exc:
        opened = state["editor"].open(slug)
        return _edit_page(state, staff, opened.draft, status_code=exc.status_code, digest=opened.digest,
                          original=slug, mode="edit", error=exc.message, filename=opened.name,
                          conflict=getattr(exc, "diff", ""))
    _audit(state, staff, saved)
    return Redirect(state["settings"].urls.article_edit(saved.slug, saved="1"), status_code=303)


@get("/articles/{slug:str}/history", sync_to_thread=True)
def article_history(state: State, staff: StaffDep, slug: FromPath[str]) -> Template:
    """The article's commits (with KB_ARTICLES_GIT) and its audit rows."""
    editor: Editor = state["editor"]
    opened = editor.open(_slug(slug))
    versions = [{**v.__dict__, "when": iso(v.ts)} for v in editor.versions(opened.draft.slug)]
    entries = [{**e.__dict__, "when": iso(e.ts)} for e in audit.entries(state["db"], article=opened.draft.slug)]
    return _page("article_history", staff, slug=opened.draft.slug, title=opened.draft.title, versions=versions,
                 git=editor.history is not None, entries=entries, actions=audit.ACTIONS)


@get("/articles/{slug:str}/versions/{revision:str}", sync_to_thread=True)
def article_version(state: State, staff: StaffDep, slug: FromPath[str], revision: FromPath[str],
                    against: Query = None) -> Template:
    """An earlier version: its text and its diff against the current file (or another version)."""
    editor: Editor = state["editor"]
    opened = editor.open(_slug(slug))
    version, source = editor.version(opened.draft.slug, revision)
    other_name, other = "current", opened.source
    if against:
        other_version, other = editor.version(opened.draft.slug, against)
        other_name = other_version.revision[:12]
    diff = unified_diff(source, other, version.revision[:12], other_name)
    return _page("article_version", staff, slug=opened.draft.slug, version={**version.__dict__, "when": iso(version.ts)},
                 source=source, diff=diff, against=other_name, digest=opened.digest)


@post("/articles/{slug:str}/versions/{revision:str}/restore", sync_to_thread=True,
      dependencies={"fields": Provide(posted)})
def article_revert(state: State, staff: StaffDep, slug: FromPath[str], revision: FromPath[str],
                   fields: Fields) -> Redirect:
    """Make an earlier version current again: a new save (and a new commit)."""
    saved = state["editor"].revert(_slug(slug), revision, opened_digest=fields.get("digest", ""), author=staff.email)
    _audit(state, staff, saved)
    return Redirect(state["settings"].urls.article_edit(saved.slug, saved="1"), status_code=303)


def _slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise NotFoundError(f"No article called {slug[:80]!r}.")
    return slug


# -- audit (owners) -----------------------------------------------------------------------------


def _audit_rows(state: State, article: str | None) -> list[audit.Entry]:
    return audit.entries(state["db"], article=article or None, limit=5000)


@get("/audit", sync_to_thread=True)
def audit_log(state: State, owner: StaffDep, article: Query = None) -> Template:
    """Who did what to which article or gap, and when, newest first."""
    rows = [{**e.__dict__, "when": iso(e.ts)} for e in _audit_rows(state, article)]
    return _page("audit", owner, entries=rows, actions=audit.ACTIONS, article=article or "")


@get("/audit.csv", sync_to_thread=True)
def audit_csv(state: State, owner: StaffDep, article: Query = None) -> Response:
    """The audit log as CSV (cells that a spreadsheet would run as formulas are defused)."""
    header = ["id", "time", "email", "action", "article", "gap_id", "detail"]
    rows = [[e.id, iso(e.ts), e.email, e.action, e.article, e.gap_id or "", e.detail]
            for e in _audit_rows(state, article)]
    return _csv("audit", header, rows)


# -- images (public) ----------------------------------------------------------------------------


@get("/articles/images/{name:str}", sync_to_thread=True)
def article_image(state: State, name: FromPath[str]) -> Response:
    """An uploaded image, served with its real type, nosniff and a CSP under which nothing runs."""
    path = image_path(state["settings"].articles, name)
    data = path.read_bytes() if path is not None else b""
    kind = image_type(data) if data else None
    if kind is None:
        raise NotFoundError(f"No image called {name[:80]!r}.")
    return Response(data, media_type=kind[1], headers=IMAGE_HEADERS)


PAGES = [article_list, article_new, article_edit, article_create, article_update, article_status, article_history,
         article_version, article_revert, audit_log, audit_csv]
ROUTES = [Router(path="/admin", include_in_schema=False, route_handlers=PAGES, dependencies=_DEPS,
                 exception_handlers={AuthError: to_login})]
PUBLIC = [article_image]

__all__ = ["ROUTES", "PUBLIC"]
