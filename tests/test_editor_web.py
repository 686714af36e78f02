"""The editor over HTTP: roles, CSRF, a gap to a published fix with the replay shown before
publishing, the concurrent-edit 409, redirects after a rename, images served safely, the audit log."""

from __future__ import annotations

import io
import re
import shutil
import time
from pathlib import Path

import pytest

from kb.insight import board, gaps
from kb.storage import schema
from kb.storage.database import record_request
from servers import TEST_HOST

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
COFFEE = ["coffee machine broken", "the coffee machine on floor 3 is not working", "coffee maker out of order",
          "espresso machine leaking water", "who fixes the coffee machine", "no coffee coming out of the machine"]
BODY = """The kitchen coffee machines on every floor are maintained by Facilities.

## When the coffee machine is broken, leaking or out of order

If the coffee machine is broken, out of order, leaking water or no coffee comes out of the machine,
report it to Facilities: they fix coffee machines and espresso machines the same day.

## Who fixes the coffee machine

Facilities fixes the coffee machine in each kitchen. Call extension 4400.
"""


@pytest.fixture
def app_parts(tmp_path, data_dir, embedder):
    """A test client over a writable copy of the articles, with a writer and an owner."""
    from litestar.testing import TestClient

    from kb.settings import Settings
    from kb.staff.auth import add_user
    from kb.web.app import build_services, create_app

    articles = tmp_path / "articles"
    shutil.copytree(ROOT / "articles", articles)
    settings = Settings.load(environ={}, articles=articles, data=data_dir, gap_refresh_minutes=0,
                             index_poll_seconds=0.2, allowed_hosts=(TEST_HOST,))
    services = build_services(settings, embedder=embedder)
    add_user(services["db"], "writer@example.com", "writer", PASSWORD)
    add_user(services["db"], "owner@example.com", "owner", PASSWORD)
    with TestClient(create_app(settings, services=services)) as client:
        yield client, services, settings
    services["rebuilder"].wait(60)
    services["db"].close()


def login(client, email: str) -> str:
    client.cookies.clear()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").text).group(1)
    client.post("/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/articles/new").text).group(1)


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    return found.group(1) if found else ""


def form_of(html: str, **changes: str) -> dict[str, str]:
    """The edit form's fields as the page filled them in, with some changed."""
    values = {k: hidden(html, k) for k in ("csrf_token", "digest", "name", "updated", "gap", "disk_digest")}
    for key in ("title", "slug", "category", "locale", "tags"):
        values[key] = re.search(rf'id="{key}" name="{key}" value="([^"]*)"', html).group(1)
    for key in ("aliases", "translations", "redirect_from", "body"):
        values[key] = re.search(rf'id="{key}" name="{key}"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    values["status"] = re.search(r'<option value="(\w+)" selected', html).group(1)
    import html as html_lib

    values = {k: html_lib.unescape(v) for k, v in values.items() if v != "" or k in ("aliases", "body", "digest")}
    return {**values, **changes}


def post(client, url: str, data: dict, files: dict | None = None, **kw):
    return client.post(url, data=data, files=files or {"image": ("", b"", "application/octet-stream")}, **kw)


def seed_gap(db, texts=COFFEE) -> int:
    with db.write() as conn:
        conn.execute(schema.requests.insert(), [
            dict(id=f"r_cof{i}", ts=time.time() - 600 + i, kind="suggest", session=f"c{i}", query=text, locale="en",
                 answered=0, top_confidence=0.1, fallback=0, results="[]", source="widget")
            for i, text in enumerate(texts)])
    return 0


def test_pages_need_a_login_and_the_audit_log_needs_an_owner(app_parts):
    client, _services, _settings = app_parts
    response = client.get("/admin/articles", follow_redirects=False)
    assert response.status_code == 303 and "/admin/login" in response.headers["location"]
    login(client, "writer@example.com")
    assert client.get("/admin/articles").status_code == 200
    assert client.get("/admin/audit").status_code == 403
    assert client.post("/admin/articles/new", data={"title": "x", "slug": "x", "action": "save"},
                       files={"image": ("", b"")}).status_code == 403  # no CSRF token
    login(client, "owner@example.com")
    assert client.get("/admin/audit").status_code == 200


def test_list_filters_and_shows_helpfulness(app_parts):
    client, services, _settings = app_parts
    db = services["db"]
    with db.write() as conn:
        conn.execute(schema.feedback.insert(), [dict(ts=time.time(), request_id="", slug="vpn-connect", helpful=h,
                                                     comment="", session="s", source="article", query="", locale="en")
                                                for h in (1, 1, 1, 0)])
    login(client, "writer@example.com")
    page = client.get("/admin/articles", params={"q": "vpn", "locale": "en"}).text
    assert "Connect to" in page and "75 %" in page and "(3 yes, 1 no)" in page
    assert "Сброс пароля" not in page
    ru = client.get("/admin/articles", params={"locale": "ru", "status": "published"}).text
    assert "/admin/articles/ru-sbros-parolya/edit" in ru and "/admin/articles/vpn-connect/edit" not in ru


def test_from_a_gap_to_a_published_fix_with_the_replay_before_publishing(app_parts):
    client, services, settings = app_parts
    db, desk = services["db"], services["desk"]
    seed_gap(db)
    gaps.refresh_gaps(db, settings, desk)
    [gap] = board.list_gaps(db)
    csrf = login(client, "writer@example.com")
    detail = client.get(f"/admin/gaps/{gap.id}").text
    assert f"/admin/articles/new?gap={gap.id}" in detail
    new = client.get("/admin/articles/new", params={"gap": gap.id}).text
    assert 'name="phrase" value="coffee maker out of order"' in new and "From the gap" in new
    fields = form_of(new, category="facilities", status="published", body=BODY, title="Coffee machine not working",
                     slug="coffee-machine")
    fields["csrf_token"] = csrf
    added = client.post("/admin/articles/new", data={**fields, "action": "phrases",
                                                     "phrase": ["coffee maker out of order", "espresso machine leaking water"]},
                        files={"image": ("", b"")})
    assert added.status_code == 200
    fields = form_of(added.text, csrf_token=csrf)
    assert fields["aliases"].splitlines() == ["coffee maker out of order", "espresso machine leaking water"]
    live_before = desk.store.version()
    replay = post(client, "/admin/articles/new", {**fields, "action": "replay"})
    after = int(re.search(r'id="replay-after">(\d+) of (\d+)', replay.text).group(1))
    assert re.search(r'id="replay-before">0 of 6', replay.text)
    assert after >= 5, replay.text[replay.text.find('id="replay"'):][:2000]
    assert desk.store.version() == live_before  # the trial build never touched the live index
    assert not [p for p in settings.data.iterdir() if p.name.startswith(".trial-")]
    saved = post(client, "/admin/articles/new", {**fields, "action": "save"}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"].startswith("/admin/articles/coffee-machine/edit")
    linked = board.get_gap(db, gap.id)
    assert (linked.linked_slug, linked.replay_before, linked.replay_total) == ("coffee-machine", 0, 6)
    assert services["rebuilder"].wait(120) and services["rebuilder"].last_error == ""
    deadline = time.time() + 10
    while "coffee-machine" not in desk.library.articles and time.time() < deadline:
        desk.reload_if_changed()
        time.sleep(0.2)
    answer = client.get("/api/v1/suggest", params={"q": "coffee maker out of order"}).json()
    assert answer["answered"] and answer["suggestions"][0]["slug"] == "coffee-machine"
    replayed = client.post(f"/admin/gaps/{gap.id}/replay", data={"csrf_token": csrf})
    assert "Answered when asked: <strong>0 / 6</strong>" in replayed.text
    done = board.get_gap(db, gap.id)
    assert done.replay_after >= 5 and len(done.replay_unanswered) == 6 - done.replay_after
    client.post(f"/admin/gaps/{gap.id}/status", data={"csrf_token": csrf, "status": "resolved"})
    assert board.get_gap(db, gap.id).status == "resolved"
    login(client, "owner@example.com")
    log = client.get("/admin/audit").text
    for what in ("created an article", "published an article", "linked a gap", "replayed a gap", "changed a gap"):
        assert what in log


def test_linking_after_indexing_keeps_the_before_figure_from_when_it_was_asked(app_parts):
    """Issue 18: write, index, then link recorded "before 4/4"; the stored results decide now."""
    client, services, settings = app_parts
    db, desk = services["db"], services["desk"]
    texts = ["how do i reset my password", "forgot my password", "reset my password please"]
    for i, text in enumerate(texts):  # asked and answered with reset-password, but the person said No
        answer = desk.suggest(text, session=f"p{i}", record=False)
        record_request(db, request_id=f"r_p{i}", kind="suggest", session=f"p{i}", query=text, locale="en",
                       answered=answer.answered, top_confidence=answer.items[0].confidence, fallback=False,
                       results=[{"slug": s.slug, "anchor": s.anchor, "confidence": s.confidence} for s in answer.items])
        db.insert(schema.feedback, dict(ts=time.time(), request_id=f"r_p{i}", slug="reset-password", helpful=0,
                                        comment="", session=f"p{i}", source="widget", query=text, locale="en"))
    seed_gap(db, COFFEE[:3])
    gaps.refresh_gaps(db, settings.replace(gap_min_misses=3), desk)
    coffee = next(g for g in board.list_gaps(db) if "coffee" in g.label)
    linked = board.link_gap(db, desk, coffee.id, "vpn-connect")
    assert (linked.replay_before, linked.replay_total) == (0, 3)  # never answered when asked
    password = next(g for g in board.list_gaps(db) if "password" in g.label)
    assert board.link_gap(db, desk, password.id, "reset-password").replay_before == 3


def test_a_concurrent_edit_is_refused_with_a_diff_and_the_text_kept(app_parts):
    client, _services, settings = app_parts
    csrf = login(client, "writer@example.com")
    page = client.get("/admin/articles/vpn-connect/edit").text
    fields = form_of(page, csrf_token=csrf)
    path = settings.articles / "vpn-connect.md"
    path.write_text(path.read_text().replace("GlobalProtect", "GlobalProtect 6", 1))  # another writer, or git
    fields["body"] += "\nMy paragraph from the browser.\n"
    refused = post(client, "/admin/articles/vpn-connect/edit", {**fields, "action": "save"})
    assert refused.status_code == 409
    assert "GlobalProtect 6" in refused.text and "+My paragraph from the browser." in refused.text
    assert "My paragraph from the browser." in re.search(r'id="body"[^>]*>(.*?)</textarea>', refused.text, re.S).group(1)
    assert "My paragraph" not in path.read_text()
    again = post(client, "/admin/articles/vpn-connect/edit", {**fields, "action": "save"})
    assert again.status_code == 409  # the plain Save still refuses
    merged = form_of(refused.text, csrf_token=csrf)
    saved = post(client, "/admin/articles/vpn-connect/edit", {**merged, "action": "overwrite"}, follow_redirects=False)
    assert saved.status_code == 303 and "My paragraph" in path.read_text()


def test_bad_fields_are_a_422_naming_them_and_nothing_is_written(app_parts):
    client, _services, settings = app_parts
    csrf = login(client, "writer@example.com")
    before = sorted(p.name for p in settings.articles.iterdir())
    bad = post(client, "/admin/articles/new", {"csrf_token": csrf, "title": "", "slug": "../../etc/passwd",
                                               "category": "Bad Category", "locale": "english", "status": "live",
                                               "body": "x", "action": "save"})
    assert bad.status_code == 422
    for key in ("title", "slug", "category", "locale", "status"):
        assert f'id="{key}-error"' in bad.text
    assert 'value="../../etc/passwd"' in bad.text  # what the writer typed is kept
    assert sorted(p.name for p in settings.articles.iterdir()) == before


def test_preview_runs_no_script_and_uses_the_portal_renderer(app_parts):
    client, _services, _settings = app_parts
    csrf = login(client, "writer@example.com")
    body = ('<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n[click](javascript:alert(3))\n\n'
            '## Steps\n\n1. <b>bold</b>\n')
    response = post(client, "/admin/articles/new", {"csrf_token": csrf, "title": "T </title><script>x</script>",
                                                    "slug": "xss", "body": body, "action": "preview"})
    preview = response.text[response.text.index('id="preview"'):]
    assert "<script>" not in preview and "<img" not in preview and 'href="javascript:' not in preview
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in preview and '<h2 id="steps">Steps</h2>' in preview
    assert "<script>x</script>" not in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_a_renamed_article_redirects_from_its_old_url_on_the_portal_and_the_api(app_parts):
    client, services, _settings = app_parts
    csrf = login(client, "writer@example.com")
    fields = form_of(client.get("/admin/articles/wifi-corp-secure/edit").text, csrf_token=csrf, slug="wifi-office")
    saved = post(client, "/admin/articles/wifi-corp-secure/edit", {**fields, "action": "save"}, follow_redirects=False)
    assert saved.headers["location"].startswith("/admin/articles/wifi-office/edit")
    assert services["rebuilder"].wait(120)
    services["desk"].reload_if_changed()
    portal = client.get("/articles/wifi-corp-secure", follow_redirects=False)
    assert portal.status_code == 301 and portal.headers["location"] == "/articles/wifi-office"
    api = client.get("/api/v1/articles/wifi-corp-secure", follow_redirects=False)
    assert api.status_code == 301 and api.headers["location"] == "/api/v1/articles/wifi-office"
    assert client.get("/api/v1/articles/wifi-office").json()["slug"] == "wifi-office"
    login(client, "owner@example.com")
    assert "wifi-corp-secure -&gt; wifi-office" in client.get("/admin/audit").text


def test_images_upload_into_the_articles_folder_and_are_served_safely(app_parts):
    from PIL import Image

    client, _services, settings = app_parts
    csrf = login(client, "writer@example.com")
    data = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 90, 200)).save(data, format="PNG")
    fields = form_of(client.get("/admin/articles/vpn-connect/edit").text, csrf_token=csrf, image_alt="VPN icon")
    uploaded = post(client, "/admin/articles/vpn-connect/edit", {**fields, "action": "upload"},
                    files={"image": ("../VPN Icon.svg", data.getvalue(), "image/svg+xml")})
    assert uploaded.status_code == 200 and "![VPN icon](/articles/images/vpn-icon.png)" in uploaded.text
    assert (settings.articles / "images" / "vpn-icon.png").read_bytes() == data.getvalue()
    served = client.get("/articles/images/vpn-icon.png")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]
    svg = post(client, "/admin/articles/vpn-connect/edit", {**fields, "action": "upload"},
               files={"image": ("x.png", b"<svg onload=alert(1)></svg>", "image/png")})
    assert svg.status_code == 422 and "not a PNG" in svg.text
    (settings.articles / "images" / "fake.png").write_bytes(b"<html><script>alert(1)</script>")
    for name in ("fake.png", "..%2Fvpn-connect.md", "nothing.png"):
        assert client.get(f"/articles/images/{name}").status_code == 404
    login(client, "owner@example.com")
    assert "uploaded an image" in client.get("/admin/audit").text


def test_audit_csv_defuses_formulas(app_parts):
    client, services, _settings = app_parts
    from kb.storage import audit

    audit.record(services["db"], audit.Actor(None, "writer@example.com"), "save", article="x",
                 detail="=HYPERLINK(\"http://evil\")")
    login(client, "owner@example.com")
    response = client.get("/admin/audit.csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert "'=HYPERLINK" in response.text and response.text.splitlines()[0] == "id,time,email,action,article,gap_id,detail"


def test_articles_git_makes_each_browser_save_a_commit_with_history_and_restore(tmp_path, data_dir, embedder):
    import subprocess

    from litestar.testing import TestClient

    from kb.content.history import NotOwnWorkTreeError
    from kb.settings import Settings
    from kb.staff.auth import add_user
    from kb.web.app import build_services, create_app, editor_services

    articles = tmp_path / "articles"
    shutil.copytree(ROOT / "articles", articles)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=seed", "-c", "user.email=seed@example.com",
                                                   "commit", "-qm", "import"]):
        subprocess.run(["git", "-C", str(articles), *args], check=True, capture_output=True)
    settings = Settings.load(environ={}, articles=articles, data=data_dir, gap_refresh_minutes=0, articles_git=True,
                             allowed_hosts=(TEST_HOST,))
    with pytest.raises(NotOwnWorkTreeError):
        editor_services(settings.replace(articles=ROOT / "articles"), embedder)  # inside kb's source tree
    assert editor_services(settings.replace(articles_git=False), embedder)["editor"].history is None
    services = build_services(settings, embedder=embedder)
    add_user(services["db"], "writer@example.com", "writer", PASSWORD)
    try:
        with TestClient(create_app(settings, services=services)) as client:
            csrf = login(client, "writer@example.com")
            fields = form_of(client.get("/admin/articles/sick-leave/edit").text, csrf_token=csrf,
                             title="Report sick leave today")
            assert post(client, "/admin/articles/sick-leave/edit", {**fields, "action": "save"},
                        follow_redirects=False).status_code == 303
            log = subprocess.run(["git", "-C", str(articles), "log", "--format=%ae %s"], capture_output=True,
                                 text=True, check=True).stdout.splitlines()
            assert log[0].startswith("writer@example.com save: sick-leave") and len(log) == 2
            history = client.get("/admin/articles/sick-leave/history").text
            revisions = re.findall(r"/admin/articles/sick-leave/versions/([0-9a-f]{12})\"", history)
            assert len(set(revisions)) == 2
            old = client.get(f"/admin/articles/sick-leave/versions/{revisions[-1]}")
            assert "+title: Report sick leave today" in old.text
            restored = client.post(f"/admin/articles/sick-leave/versions/{revisions[-1]}/restore",
                                   data={"csrf_token": csrf, "digest": hidden(old.text, "digest")}, follow_redirects=False)
            assert restored.status_code == 303
            assert "Report sick leave today" not in (articles / "sick-leave.md").read_text()
            assert client.get("/admin/articles/sick-leave/versions/zzzz").status_code == 404
    finally:
        services["rebuilder"].wait(120)
        services["db"].close()
