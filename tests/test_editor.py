"""The article editor's write path (kb/content/editor.py): the writer's format, atomic saves,
concurrent edits refused with a diff, slug renames, images, git history, and the front matter
limits a browser-facing editor needs."""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from kb.content.articles import load_dir, parse
from kb.content.editor import ConflictError, Editor, Rebuilder
from kb.content.history import History, NotOwnWorkTreeError
from kb.content.images import IMAGE_BYTES, image_path, image_type
from kb.content.source import Draft, digest, from_source, to_source
from kb.errors import ArticleError, NotFoundError, ValidationError

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = ROOT / "articles"
WRITER = "writer@example.com"


@pytest.fixture
def folder(tmp_path) -> Path:
    target = tmp_path / "articles"
    shutil.copytree(ARTICLES, target)
    return target


@pytest.fixture
def editor(folder) -> Editor:
    return Editor(folder)


def png(width: int = 4, height: int = 3, fmt: str = "PNG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


# -- the writer's format ---------------------------------------------------------------------------


def test_every_bundled_article_is_written_back_byte_for_byte():
    for path in sorted(ARTICLES.glob("*.md")):
        source = path.read_text(encoding="utf-8")
        draft = from_source(source, path.name)
        assert to_source(draft) == source, path.name  # regenerated from the fields alone
        assert to_source(draft, source) == source


def test_a_new_article_is_written_as_a_writer_types_it():
    draft = Draft(title="Кофемашина не работает", slug="coffee-machine", category="facilities", locale="ru",
                  status="published", updated="2026-11-01", tags=("кухня", "coffee"),
                  aliases=("кофемашина сломалась", "0x800ccc0e", "yes", "a: b"), translations=(("en", "coffee"),),
                  body="Intro.\r\n\r\n## Шаги\r\n\r\n1. Позвоните 4400.\r\n")
    text = to_source(draft)
    assert text == (
        "---\ntitle: Кофемашина не работает\nslug: coffee-machine\ncategory: facilities\ntags: [кухня, coffee]\n"
        "locale: ru\ntranslations: {en: coffee}\nstatus: published\nupdated: 2026-11-01\naliases:\n"
        "  - кофемашина сломалась\n  - \"0x800ccc0e\"\n  - \"yes\"\n  - \"a: b\"\n---\n"
        "Intro.\n\n## Шаги\n\n1. Позвоните 4400.\n")
    back = parse(text, "coffee-machine.md")
    assert back.aliases == draft.aliases and back.title == draft.title


def test_front_matter_keys_without_a_field_survive_a_save(editor, folder):
    path = folder / "reset-password.md"
    path.write_text(path.read_text().replace("status: published\n", "status: published\nowner: it-team\n"))
    opened = editor.open("reset-password")
    editor.save(replace(opened.draft, extra=(), title="Reset your password"), opened_digest=opened.digest,
                original="reset-password", author=WRITER)
    text = path.read_text()
    assert "owner: it-team\n" in text and "title: Reset your password\n" in text


# -- saves -------------------------------------------------------------------------------------------


def test_save_writes_atomically_and_refuses_a_concurrent_edit_with_a_diff(editor, folder):
    path = folder / "vpn-connect.md"
    opened = editor.open("vpn-connect")
    path.write_text(path.read_text().replace("GlobalProtect", "GlobalProtect (edited on disk)", 1))  # git pull, say
    mine = replace(opened.draft, body=opened.draft.body + "\nA line from the browser.\n")
    with pytest.raises(ConflictError) as refused:
        editor.save(mine, opened_digest=opened.digest, original="vpn-connect", author=WRITER)
    assert "(edited on disk)" in refused.value.diff and "+A line from the browser." in refused.value.diff
    assert "A line from the browser" not in path.read_text()  # nothing overwritten
    saved = editor.save(mine, opened_digest=refused.value.current, original="vpn-connect", author=WRITER)
    assert saved.actions == ("save",) and "A line from the browser" in path.read_text()
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_two_writers_saving_the_same_version_at_once_one_wins_one_is_refused(editor, folder):
    opened = editor.open("wifi-corp-secure")
    other = Editor(folder)  # another process, as far as the flock is concerned
    results: list[str] = []

    def save(ed: Editor, line: str) -> None:
        try:
            ed.save(replace(opened.draft, body=opened.draft.body + line), opened_digest=opened.digest,
                    original="wifi-corp-secure", author=WRITER)
            results.append("saved")
        except ConflictError:
            results.append("refused")

    threads = [threading.Thread(target=save, args=(ed, f"\nline {i}\n")) for i, ed in enumerate((editor, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["refused", "saved"]


def test_a_file_edited_by_hand_after_a_browser_save_still_loads_and_saves(editor, folder):
    opened = editor.open("sick-leave")
    editor.save(replace(opened.draft, aliases=(*opened.draft.aliases, "off sick")), opened_digest=opened.digest,
                original="sick-leave", author=WRITER)
    path = folder / "sick-leave.md"
    path.write_text(path.read_text().replace("  - off sick\n", "  - off sick\n  - feeling ill\n"))
    again = editor.open("sick-leave")
    assert again.draft.aliases[-2:] == ("off sick", "feeling ill")
    assert [a.slug for a in load_dir(folder).articles].count("sick-leave") == 1


def test_a_new_article_archive_and_restore(editor, folder):
    draft = Draft(title="Coffee machine", slug="coffee-machine", category="facilities", status="published",
                  body="## Broken\n\nCall 4400.")
    saved = editor.save(draft, opened_digest="", author=WRITER)
    assert saved.actions == ("create", "publish") and (folder / "coffee-machine.md").exists()
    with pytest.raises(ValidationError, match="coffee-machine"):  # a second one with the same slug
        editor.save(draft, opened_digest="", author=WRITER)
    opened = editor.open("coffee-machine")
    archived = editor.set_status("coffee-machine", "archived", opened_digest=opened.digest, author=WRITER)
    assert archived.actions == ("archive",)
    assert not next(a for a in load_dir(folder).articles if a.slug == "coffee-machine").published
    restored = editor.set_status("coffee-machine", "draft", opened_digest=editor.open("coffee-machine").digest,
                                 author=WRITER)
    assert restored.actions == ("restore",) and "Call 4400" in (folder / "coffee-machine.md").read_text()


def test_renaming_a_slug_moves_the_file_and_keeps_the_old_slug_as_a_redirect(editor, folder):
    opened = editor.open("printer-paper-jam")
    saved = editor.save(replace(opened.draft, slug="paper-jam"), opened_digest=opened.digest,
                        original="printer-paper-jam", author=WRITER)
    assert saved.actions == ("rename",) and saved.renamed_from == "printer-paper-jam"
    assert not (folder / "printer-paper-jam.md").exists()
    assert parse((folder / "paper-jam.md").read_text(), "paper-jam.md").redirect_from == ("printer-paper-jam",)
    new = editor.open("paper-jam")
    with pytest.raises(ValidationError, match="redirects to"):  # the old slug is taken by the redirect
        editor.save(Draft(title="x", slug="printer-paper-jam", body="x"), opened_digest="", author=WRITER)
    back = editor.save(replace(new.draft, slug="printer-paper-jam"), opened_digest=new.digest, original="paper-jam",
                       author=WRITER)
    assert parse((folder / "printer-paper-jam.md").read_text(), "x.md").redirect_from == ("paper-jam",)
    assert back.slug == "printer-paper-jam"


@pytest.mark.parametrize("slug", ["../escape", "a/b", "..", "UPPER", "with space", "x" * 3000])
def test_a_slug_cannot_escape_the_articles_folder(editor, folder, slug):
    with pytest.raises(ValidationError) as refused:
        editor.save(Draft(title="Escape", slug=slug, body="x"), opened_digest="", author=WRITER)
    assert refused.value.errors[0]["key"] == "slug"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["articles"]


def test_editor_paths_outside_the_folder_are_refused(editor, folder):
    with pytest.raises(ValidationError):
        editor._path("../outside.md")
    (folder / "link.md").symlink_to(folder.parent / "outside.md")
    with pytest.raises(ValidationError):
        editor._path("link.md")
    with pytest.raises(NotFoundError):
        editor.open("no-such-article")


# -- front matter the editor writes --------------------------------------------------------------


def test_the_editor_writes_no_anchors_even_for_repeated_values(editor, folder):
    draft = Draft(title="Same", slug="same", body="x", aliases=("same", "same words"), tags=("same",),
                  extra=(("see", ["a", "b"]), ("also", ["a", "b"])))
    text = to_source(draft)
    assert "&" not in text and "*" not in text
    assert parse(text, "same.md").aliases == ("same", "same words")


# -- images ---------------------------------------------------------------------------------------


def test_images_are_checked_by_content_and_named_safely(editor, folder):
    stored = editor.upload("../../Схема принтера.PNG", png(), WRITER)
    assert stored.name == "image.png"  # nothing of the Cyrillic, the path or the case is left
    assert image_path(folder, stored.name) == (folder / "images" / stored.name).resolve()
    assert editor.upload("x.gif", png(fmt="GIF"), WRITER).name == "x.gif"  # the real type names the extension
    assert editor.upload("photo.png", png(fmt="JPEG"), WRITER).name == "photo.jpg"
    again = editor.upload("photo.jpeg", png(fmt="JPEG"), WRITER)
    assert (again.name, again.created) == ("photo.jpg", False)  # the same bytes are not stored twice
    for name, data in [("evil.png", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"),
                       ("page.png", b"<html><script>alert(1)</script>"), ("cut.png", png()[:40])]:
        with pytest.raises(ValidationError, match="not a PNG"):
            editor.upload(name, data, WRITER)
    with pytest.raises(ValidationError, match="larger than"):
        editor.upload("big.png", b"\x89PNG" + b"0" * IMAGE_BYTES, WRITER)
    assert image_type(png(20000, 20000)) is None  # a decompression bomb is refused before decoding
    assert image_path(folder, "../kb.db") is None and image_path(folder, "x.svg") is None
    assert sorted(p.name for p in folder.parent.iterdir()) == ["articles"]


# -- git history ----------------------------------------------------------------------------------


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(folder) -> Path:
    git(folder, "init", "-q")
    git(folder, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "add", "-A")
    git(folder, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-qm", "import")
    return folder


def test_each_save_is_a_commit_by_the_writer_with_history_diff_and_restore(repo):
    editor = Editor(repo, History(repo))
    opened = editor.open("vpn-connect")
    first = editor.save(replace(opened.draft, title="Connect to the VPN from home"), opened_digest=opened.digest,
                        original="vpn-connect", author="anna@example.com")
    assert first.revision and git(repo, "log", "-1", "--format=%an <%ae>|%cn").strip() == "anna <anna@example.com>|kb"
    assert git(repo, "status", "--porcelain").strip() == ""
    renamed = editor.open("vpn-connect")
    editor.save(replace(renamed.draft, slug="vpn-from-home"), opened_digest=renamed.digest, original="vpn-connect",
                author="boris@example.com")
    versions = editor.versions("vpn-from-home")
    assert [v.email for v in versions] == ["boris@example.com", "anna@example.com", "seed@example.com"]
    assert versions[-1].path == "vpn-connect.md"  # followed through the rename
    old, source = editor.version("vpn-from-home", versions[-1].revision[:12])
    assert "title: Connect to GlobalProtect VPN" in source or "vpn-connect" in source
    current = editor.open("vpn-from-home")
    restored = editor.revert("vpn-from-home", versions[1].revision, opened_digest=current.digest, author=WRITER)
    assert restored.actions == ("revert",) and restored.slug == "vpn-connect"
    assert len(editor.versions("vpn-connect")) == 4  # a restore is a new commit; nothing is lost
    with pytest.raises(NotFoundError):
        editor.version("vpn-connect", "0123456789abcdef")


def test_git_history_is_refused_outside_an_own_work_tree(tmp_path, folder):
    with pytest.raises(NotOwnWorkTreeError, match="not the top of its own git work tree"):
        History(folder)  # not a repository at all
    with pytest.raises(NotOwnWorkTreeError, match="not the top"):
        History(ARTICLES)  # the bundled articles are inside kb's source tree
    git(folder, "init", "-q")
    (folder / "kb").mkdir()
    (folder / "kb" / "__init__.py").write_text("")
    with pytest.raises(NotOwnWorkTreeError, match="source tree"):
        History(folder)


# -- rebuilds -------------------------------------------------------------------------------------


def test_rebuilds_run_one_at_a_time_and_coalesce():
    running, peak, calls = [0], [0], []
    gate = threading.Event()

    def build() -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        calls.append(1)
        gate.wait(5)
        running[0] -= 1

    rebuilder = Rebuilder(build)
    for _ in range(5):
        rebuilder.request()
    gate.set()
    assert rebuilder.wait(10)
    assert peak[0] == 1 and 1 <= len(calls) <= 2 and rebuilder.builds == len(calls)


def test_a_failing_rebuild_is_reported_and_the_next_one_runs():
    outcomes = iter([RuntimeError("disk full"), None])

    def build() -> None:
        error = next(outcomes)
        if error:
            raise error

    rebuilder = Rebuilder(build)
    rebuilder.request()
    assert rebuilder.wait(10) and rebuilder.last_error == "disk full"
    rebuilder.request()
    assert rebuilder.wait(10) and rebuilder.last_error == "" and rebuilder.builds == 1


def test_digest_is_of_the_bytes_on_disk():
    assert digest("a\n") == digest(b"a\n") != digest("a\r\n")
    with pytest.raises(ArticleError):
        from_source("no front matter", "x.md")
