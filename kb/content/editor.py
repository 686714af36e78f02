"""Every write to the articles folder, and the rebuild that follows it, in one place.

The browser editor (kb/web/editor.py) reads and writes articles only through `Editor`: save,
archive and restore (a save with another status), revert to an earlier version, upload an image.
A save

- refuses when the file changed on disk since the form was opened (the form carries the digest
  of the text it was opened with): `ConflictError` carries the diff, nothing is overwritten;
- writes the Markdown atomically (a temporary file, then os.replace) in the format a writer
  types (kb/content/source.py), so the folder stays the source of truth and editing it by hand
  keeps working;
- renames the file when the slug changes, keeping the old slug in `redirect_from:`;
- commits when KB_ARTICLES_GIT is on (kb/content/history.py), with the staff member as author;
- calls the `rebuild` hook, which by default re-indexes what changed in a background thread
  (`Rebuilder`).

Several boxes (docs/deploy.md): the publisher holds the one articles source, so its `Editor`
writes and rebuilds, and replicas pull the build it publishes. A replica's `Editor` is made with
the publisher's URL and refuses every read and write (ArticlesElsewhereError, 409) rather than
edit a folder no build is made from.

One save at a time: a lock in this process and an flock on the folder across processes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from search.embed import Embedder

from kb.content.articles import ArticleError, markdown_files
from kb.content.history import History, Version
from kb.content.images import StoredImage, store_image
from kb.content.indexer import index_directory
from kb.content.publish import ArticlesElsewhereError
from kb.content.source import Draft, check, digest, from_source, to_source, unified_diff
from kb.errors import KbError, NotFoundError, ValidationError
from kb.settings import Settings

log = logging.getLogger("kb.editor")
SLUG_LINE = re.compile(r"^slug\s*:\s*['\"]?([a-z0-9-]+)['\"]?\s*$", re.MULTILINE)


class ConflictError(KbError):
    """The article changed on disk since it was opened: nothing was saved."""

    status_code = 409

    def __init__(self, diff: str, current: str, message: str | None = None) -> None:
        super().__init__(message or "This article changed on disk since you opened it: nothing was saved. "
                         "Compare the versions below, merge what you need, then save again.")
        self.diff = diff
        self.current = current  # the digest on disk now: saving with it overwrites knowingly


@dataclass(frozen=True)
class Opened:
    """An article file as read for editing."""

    name: str  # relative to the articles folder
    source: str
    digest: str
    draft: Draft


@dataclass(frozen=True)
class Listed:
    """One article file for the editor's list (front matter only, the body is not parsed)."""

    name: str
    slug: str
    title: str
    category: str
    locale: str
    status: str
    updated: str
    tags: tuple[str, ...]
    aliases: tuple[str, ...]
    redirect_from: tuple[str, ...]


@dataclass(frozen=True)
class Saved:
    """What a save did: the article's slug and file, the audit actions, the commit (if any)."""

    slug: str
    name: str
    actions: tuple[str, ...]  # create, save, publish, unpublish, archive, restore, rename, revert
    revision: str = ""
    renamed_from: str = ""


def _actions(old: Draft | None, new: Draft) -> tuple[str, ...]:
    if old is None:
        return ("create", "publish") if new.status == "published" else ("create",)
    out = ["rename"] if old.slug != new.slug else []
    if old.status != new.status:
        out.append({"published": "publish", "archived": "archive"}.get(new.status, "")
                   or ("restore" if old.status == "archived" else "unpublish"))
    return tuple(out) or ("save",)


class Editor:
    """Reads and writes the articles folder for the browser editor."""

    def __init__(self, directory: Path, history: History | None = None,
                 rebuild: Callable[[], None] | None = None, publisher: str = "") -> None:
        self.directory = Path(directory)
        self.history = history
        self.rebuild = rebuild or (lambda: None)
        self.publisher = publisher  # set on a replica: the server that holds the articles
        self._lock = threading.Lock()

    def check_source(self) -> None:
        """Raise ArticlesElsewhereError on a replica: articles are read and written on the publisher."""
        if self.publisher:
            raise ArticlesElsewhereError(
                "This server is a replica: articles are kept, edited and indexed on the publisher. Open the "
                "editor at the desk's public address (the balancer sends /admin/articles to the publisher) "
                f"or at {self.publisher}/admin/articles.")

    # -- reading ----------------------------------------------------------------------------

    def listing(self) -> tuple[list[Listed], list[ArticleError]]:
        """Every article file's front matter (drafts and archived too), and the files that do not parse."""
        self.check_source()
        if not self.directory.is_dir():
            raise NotFoundError(f"The articles directory {self.directory} does not exist.")
        items, errors = [], []
        for name, path in markdown_files(self.directory):
            try:
                draft = from_source(Path(path).read_text(encoding="utf-8"), name)
            except ArticleError as exc:
                errors.append(exc)
                continue
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(ArticleError(name, f"cannot be read: {exc}"))
                continue
            items.append(Listed(name, draft.slug, draft.title, draft.category, draft.locale, draft.status,
                                draft.updated, draft.tags, draft.aliases, draft.redirect_from))
        return items, errors

    def find(self, slug: str) -> str | None:
        """The file (relative name) whose front matter has this slug, or None."""
        self.check_source()
        candidates = []
        for name, path in markdown_files(self.directory):
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    head = fh.read(4096)
            except OSError:
                continue
            found = SLUG_LINE.search(head.split("\n---", 1)[0])
            if (found.group(1) if found else Path(name).stem) == slug:
                candidates.append(name)
        for name in candidates:  # the quick look may be fooled by odd YAML: the parser decides
            try:
                if self.open_file(name).draft.slug == slug:
                    return name
            except ArticleError:
                continue
        return None

    def open_file(self, name: str) -> Opened:
        self.check_source()
        source = self._path(name).read_text(encoding="utf-8")
        return Opened(name, source, digest(source), from_source(source, name))

    def open(self, slug: str) -> Opened:
        """An article for editing; NotFoundError if no file has this slug."""
        name = self.find(slug)
        if name is None:
            raise NotFoundError(f"No article file with the slug {slug!r}.", slug=slug)
        return self.open_file(name)

    def _path(self, name: str) -> Path:
        """A file inside the articles folder; anything that resolves outside it is refused."""
        root = self.directory.resolve()
        path = (root / name).resolve()
        if root not in path.parents or path.suffix != ".md":
            raise ValidationError([{"key": "slug", "message": "the file would be outside the articles folder"}])
        return path

    # -- writing ----------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time: in this process, and across processes sharing the folder."""
        self.check_source()
        with self._lock:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def save(self, draft: Draft, *, opened_digest: str, original: str = "", author: str,
             today: dt.date | None = None, action: str = "") -> Saved:
        """Write a draft. `original` is the slug the form was opened with ('' for a new article) and
        `opened_digest` the digest of the file as it was then: if the file changed since, nothing
        is written and ConflictError carries the diff."""
        check(draft)
        with self._writing():
            old = self._current(original, draft, opened_digest)
            if old is not None and not draft.extra:  # keys the form has no field for are kept
                draft = replace(draft, extra=old.draft.extra)
            if old is not None and old.draft.same_content(draft):
                return Saved(draft.slug, old.name, ())
            self._check_slug_free(draft.slug, old.name if old else None)
            redirects = draft.redirect_from
            if old is not None and old.draft.slug != draft.slug:
                redirects = tuple(dict.fromkeys([*redirects, old.draft.slug]))
            final = replace(draft, redirect_from=tuple(s for s in redirects if s != draft.slug),
                            updated=(today or dt.date.today()).isoformat())
            name = self._name_for(final.slug, old)
            text = to_source(final, old.source if old else None)
            from_source(text, name)  # what is written must load, or nothing is
            self._write(name, text)
            if old is not None and old.name != name:
                self._path(old.name).unlink()
            actions = (action,) if action else _actions(old.draft if old else None, final)
            revision = self._commit([name] + ([old.name] if old and old.name != name else []), final, actions, author)
        self._rebuild()
        return Saved(final.slug, name, actions, revision, old.draft.slug if old and old.draft.slug != final.slug else "")

    def _current(self, original: str, draft: Draft, opened_digest: str) -> Opened | None:
        """The file as it is now, checked against what the form was opened with."""
        if not original:
            return None
        name = self.find(original)
        if name is None:
            theirs = to_source(draft)
            raise ConflictError(unified_diff("", theirs, f"{original} (deleted on disk)", "your version"), "",
                                f"The article {original!r} was deleted or renamed on disk since you opened it: "
                                "nothing was saved. Save it as a new article if you want to keep your text.")
        current = self.open_file(name)
        if current.digest != opened_digest:
            theirs = to_source(replace(draft, updated=current.draft.updated), current.source)
            raise ConflictError(unified_diff(current.source, theirs, f"{name} (on disk now)", "your version"),
                                current.digest)
        return current

    def _check_slug_free(self, slug: str, own: str | None) -> None:
        """No other file may have this slug, or keep it in its redirect_from."""
        listed, _errors = self.listing()
        for item in listed:
            if item.name != own and (item.slug == slug or slug in item.redirect_from):
                where = "is the slug of" if item.slug == slug else "redirects to"
                raise ValidationError([{"key": "slug", "message": f"{slug!r} {where} {item.name}"}],
                                      message=f"The slug {slug!r} {where} another article ({item.name}): choose another.")

    def _name_for(self, slug: str, old: Opened | None) -> str:
        """The file name: the old one while the slug is unchanged, else <slug>.md in the same folder."""
        if old is not None and old.draft.slug == slug:
            return old.name
        folder = str(Path(old.name).parent) if old is not None else "."
        name = os.path.normpath(os.path.join(folder, slug + ".md"))
        if self._path(name).exists():
            raise ValidationError([{"key": "slug", "message": f"a file {name} already exists"}],
                                  message=f"A file {name} already exists in the articles folder: choose another slug.")
        return name

    def _write(self, name: str, text: str) -> None:
        """Atomically: a temporary file beside the target, flushed, then renamed over it."""
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _commit(self, names: list[str], draft: Draft, actions: tuple[str, ...], author: str) -> str:
        if self.history is None:
            return ""
        return self.history.commit(names, f"{', '.join(actions)}: {draft.slug} ({draft.title})"[:200], author)

    def _rebuild(self) -> None:
        try:
            self.rebuild()
        except Exception:  # the save is done; the next save or `kb index` picks the change up
            log.exception("could not start the rebuild after a save")

    def set_status(self, slug: str, status: str, *, opened_digest: str, author: str) -> Saved:
        """Archive (status archived), restore (back to draft) or publish an article."""
        opened = self.open(slug)
        return self.save(replace(opened.draft, status=status), opened_digest=opened_digest, original=slug,
                         author=author)

    def upload(self, filename: str, data: bytes, author: str) -> StoredImage:
        """Store an image in articles/images/ (checked by content and size), committed when in git."""
        with self._writing():
            image = store_image(self.directory, filename, data)
            if image.created and self.history is not None:
                self.history.commit([f"images/{image.name}"], f"upload: images/{image.name}", author)
        return image

    # -- history ----------------------------------------------------------------------------

    def versions(self, slug: str) -> list[Version]:
        """The article's commits, newest first ([] when the folder is not in git)."""
        if self.history is None:
            return []
        return self.history.versions(self.open(slug).name)

    def version(self, slug: str, revision: str) -> tuple[Version, str]:
        """One earlier version of an article and its text; NotFoundError if it is not in the history."""
        found = next((v for v in self.versions(slug) if v.revision.startswith(revision) and len(revision) >= 7), None)
        if found is None or self.history is None:
            raise NotFoundError(f"No version {revision[:40]!r} of {slug!r}.")
        return found, self.history.source(found.revision, found.path)

    def revert(self, slug: str, revision: str, *, opened_digest: str, author: str) -> Saved:
        """Make an earlier version the current one again (a new save, so a new commit)."""
        version, source = self.version(slug, revision)
        old = from_source(source, version.path)
        return self.save(old, opened_digest=opened_digest, original=slug, author=author, action="revert")


def new_draft(title: str = "", locale: str = "en", aliases: tuple[str, ...] = ()) -> Draft:
    """A blank draft (status draft), prefilled with what a gap suggests."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return Draft(title=title, slug=slug, locale=locale, aliases=aliases, status="draft",
                 body="Write a short introduction: who this is for and what it solves.\n\n## Steps\n\n1. \n")



class Rebuilder:
    """Runs a build in a background thread, one at a time: requests made during a build are
    served by one more build after it (a burst of saves costs two builds, not one each)."""

    def __init__(self, build: Callable[[], object]) -> None:
        self._build = build
        self._cond = threading.Condition()
        self._pending = False
        self._running = False
        self.builds = 0
        self.last_error = ""

    def request(self) -> None:
        """Ask for a build; returns at once."""
        with self._cond:
            self._pending = True
            if not self._running:
                self._running = True
                threading.Thread(target=self._loop, name="kb-rebuild", daemon=True).start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._running = False
                    self._cond.notify_all()
                    return
                self._pending = False
            try:
                self._build()
                self.builds += 1
                self.last_error = ""
            except Exception as exc:  # keep serving the last build; the editor shows the error
                log.exception("rebuild after a save failed")
                self.last_error = str(exc) or type(exc).__name__

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no build is running or pending; whether that happened within the timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running and not self._pending, timeout)


def locked_build(settings: Settings, embedder: Embedder) -> Callable[[], None]:
    """A build of the articles folder into the index (only what changed is re-embedded), one at a
    time across every process sharing the index folder (an flock on it)."""

    def build() -> None:
        root = settings.index_path
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            summary = index_directory(settings, embedder)
            log.info("re-indexed after a save: %d embedded, %d removed, %d skipped in %.2f s",
                     summary.embedded_articles, summary.removed_articles, len(summary.skipped), summary.seconds)
        finally:
            os.close(fd)

    return build
