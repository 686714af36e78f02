"""One index build for every replica: a replica pulls the publisher's build over HTTP, checks
every file's size and SHA-256, links what it already has, refuses a corrupted or half-written
download (keeping the build it serves), and waits out a publisher that is down."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from kb.content.publish import ArticlesElsewhereError, Puller
from kb.settings import Settings
from kb.storage.secrets import INDEX_TOKEN, shared_secret

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "http://testserver.local"


@pytest.fixture
def publisher(settings, services):
    """The publishing server in process: the shared test data directory's build, on a TestClient."""
    from kb.web.app import create_app

    settings = settings.replace(publish_index=True)
    services["settings"] = settings
    with TestClient(create_app(settings, services=services, background_work=False)) as client:
        yield settings, services, client


def replica_settings(tmp_path: Path, **changes) -> Settings:
    values = {"data": tmp_path / "replica", "articles": tmp_path / "no-articles", "index_source": SOURCE, **changes}
    return Settings.load(environ={}, **values)


def puller_for(tmp_path: Path, services, client: httpx.Client, embedder, **changes) -> Puller:
    token = shared_secret(services["db"], INDEX_TOKEN)  # the replica shares the publisher's database
    return Puller(replica_settings(tmp_path, **changes), lambda: token, model=embedder.name, client=client)


def build_of(settings: Settings) -> Path:
    return (settings.index_path / "current").resolve()


def digests(build: Path) -> dict[str, str]:
    from search.artefact import describe

    return {f.name: f.sha256 for f in describe(build)}


class Tampering(httpx.BaseTransport):
    """Passes requests to the publisher, damaging the body of one file on the way."""

    def __init__(self, inner: httpx.BaseTransport, damage) -> None:
        self.inner, self.damage = inner, damage

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/vectors.npy"):
            body = self.damage(response.read())
            return httpx.Response(response.status_code, headers={"content-type": "application/octet-stream"},
                                  content=body)
        return response


def test_a_replica_installs_the_published_build_without_embedding_anything(publisher, tmp_path, embedder):
    from kb.serving.desk import Desk

    settings, services, client = publisher
    calls = embedder.calls
    puller = puller_for(tmp_path, services, client, embedder)
    version = puller.pull()
    assert version == build_of(settings).name and puller.local_version == version
    assert embedder.calls == calls, "a replica must not embed documents"
    assert digests(build_of(replica_settings(tmp_path))) == digests(build_of(settings))
    desk = Desk(replica_settings(tmp_path), embedder, db=None)
    desk.load()
    assert desk.suggest("vpn keeps dropping", record=False).items[0].slug == \
        services["desk"].suggest("vpn keeps dropping", record=False).items[0].slug
    assert puller.pull() is None, "the same build is not fetched twice"


def publish_a_change(settings: Settings, tmp_path: Path, embedder) -> str:
    """The publisher's `kb index` job after a writer added a section; the new build's name."""
    import shutil

    from kb.content.indexer import index_directory

    articles = tmp_path / "articles"
    if not articles.exists():
        shutil.copytree(ROOT / "articles", articles)
    page = articles / "vpn-connect.md"
    page.write_text(page.read_text(encoding="utf-8") + "\n\n## Split tunnelling\n\nAsk the desk to turn it on.\n",
                    encoding="utf-8")
    index_directory(settings.replace(articles=articles), embedder)
    return build_of(settings).name


def test_a_new_build_is_pulled_and_unchanged_files_are_linked_not_fetched(publisher, tmp_path, embedder):
    settings, services, client = publisher
    puller = puller_for(tmp_path, services, client, embedder)
    assert puller.pull()
    first = build_of(replica_settings(tmp_path))
    version = publish_a_change(settings, tmp_path, embedder)
    fetched: list[str] = []
    client.event_hooks["request"] = [lambda request: fetched.append(request.url.path.rsplit("/", 1)[-1])]
    assert puller.pull() == version
    second = build_of(replica_settings(tmp_path))
    assert digests(second) == digests(build_of(settings))
    linked = [n for n in digests(second) if (first / n).exists() and os.stat(first / n).st_ino == os.stat(second / n).st_ino]
    assert "docs.base.json" in linked, "record bases the builds share are linked, not downloaded"
    assert not set(linked) & set(fetched)
    assert {"manifest.json", "vectors.npy"} <= set(fetched)


@pytest.mark.parametrize("damage, reason", [
    (lambda body: body[:100] + bytes([body[100] ^ 1]) + body[101:], "corrupted"),
    (lambda body: body[: len(body) // 2], "cut short"),
    (lambda body: body + b"\0" * 10, "more than"),
])
def test_a_damaged_download_is_refused_and_the_live_build_keeps_serving(publisher, tmp_path, embedder, damage, reason):
    settings, services, client = publisher
    live = puller_for(tmp_path, services, client, embedder).pull()
    replica = replica_settings(tmp_path)
    before = digests(build_of(replica))
    newer = publish_a_change(settings, tmp_path, embedder)
    tampered = httpx.Client(transport=Tampering(client._transport, damage), base_url=SOURCE)
    puller = puller_for(tmp_path, services, tampered, embedder)
    assert puller.pull() is None
    assert reason in puller.last_error and f"refused build {newer}" in puller.last_error
    assert puller.local_version == live, "a refused build never goes live"
    assert sorted(p.name for p in (replica.index_path / "builds").iterdir()) == [live], "nothing half-written is left"
    assert digests(build_of(replica)) == before, "the live build on disk is untouched"
    assert puller_for(tmp_path, services, client, embedder).pull() == newer, "an intact copy is taken later"


def test_a_download_cut_off_mid_file_is_refused(publisher, tmp_path, embedder):
    settings, services, client = publisher

    class CutOff(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/vectors.npy"):
                raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
            return client._transport.handle_request(request)

    puller = puller_for(tmp_path, services, httpx.Client(transport=CutOff(), base_url=SOURCE), embedder)
    assert puller.pull() is None and "download failed" in puller.last_error
    assert puller.local_version is None
    assert not list((replica_settings(tmp_path).index_path / "builds").iterdir())


def test_while_the_publisher_is_down_the_replica_keeps_its_build_and_recovers(publisher, tmp_path, embedder):
    from kb.measure.bench import free_port

    settings, services, client = publisher
    live = puller_for(tmp_path, services, client, embedder).pull()
    down = puller_for(tmp_path, services, httpx.Client(), embedder,
                      index_source=f"http://127.0.0.1:{free_port()}", index_poll_seconds=0.1)
    assert down.pull() is None and "unreachable" in down.last_error
    assert down.local_version == live
    assert down.pull() is None and down.failures == 1, "retries back off instead of hammering the publisher"


def test_only_a_publisher_with_the_token_hands_out_builds(publisher, services):
    settings, _, client = publisher
    token = shared_secret(services["db"], INDEX_TOKEN)
    assert client.get("/api/v1/index").status_code == 401
    assert client.get("/api/v1/index", headers={"Authorization": "Bearer nope"}).status_code == 403
    offer = client.get("/api/v1/index", headers={"Authorization": f"Bearer {token}"})
    assert offer.status_code == 200 and offer.json()["version"] == build_of(settings).name
    auth = {"Authorization": f"Bearer {token}"}
    version = offer.json()["version"]
    for path in (f"{version}/..%2Fkb.db", f"{version}/.hidden", "..%2F..%2Fkb.db/x", f"{version}/nothing.npy"):
        assert client.get(f"/api/v1/index/{path}", headers=auth).status_code == 404, path
    assert client.get(f"/api/v1/index/{version}/manifest.json", headers=auth).status_code == 200
    assert "/api/v1/index" not in client.get("/schema/openapi.json").text


def test_a_server_that_does_not_publish_answers_404(client, services):
    token = shared_secret(services["db"], INDEX_TOKEN)
    assert client.get("/api/v1/index", headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_a_build_for_another_model_is_refused_before_download(publisher, tmp_path, embedder):
    _, services, client = publisher
    token = shared_secret(services["db"], INDEX_TOKEN)
    puller = Puller(replica_settings(tmp_path), lambda: token, model="another-model", client=client)
    assert puller.pull() is None and "another-model" in puller.last_error
    assert puller.local_version is None


def test_a_replica_never_indexes_articles_itself(tmp_path, embedder):
    from kb.content.indexer import index_directory

    with pytest.raises(ArticlesElsewhereError, match=SOURCE):
        index_directory(replica_settings(tmp_path, articles=ROOT / "articles"), embedder)


def test_a_replicas_editor_refuses_and_names_the_publisher(settings, services, embedder, tmp_path):
    import re
    import shutil

    from kb.content.source import from_source
    from kb.staff.auth import add_user
    from kb.web.app import create_app, editor_services

    articles = tmp_path / "articles"  # a stale copy on the replica's disk: nothing may be written to it
    shutil.copytree(ROOT / "articles", articles)
    before = {p.name: p.read_bytes() for p in articles.rglob("*") if p.is_file()}
    replica = settings.replace(index_source=SOURCE, articles=articles)
    services["settings"] = replica
    services.update(editor_services(replica, embedder))
    editor = services["editor"]
    draft = from_source((articles / "vpn-connect.md").read_text(encoding="utf-8"), "vpn-connect.md")
    with pytest.raises(ArticlesElsewhereError, match="publisher"):
        editor.save(draft, opened_digest="", original="vpn-connect", author="w@example.com")
    with pytest.raises(ArticlesElsewhereError):
        editor.upload("logo.png", b"\x89PNG\r\n\x1a\n", author="w@example.com")

    add_user(services["db"], "writer@example.com", "writer", "correct horse battery")
    with TestClient(create_app(replica, services=services, background_work=False)) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").text).group(1)
        client.post("/admin/login", data={"email": "writer@example.com", "password": "correct horse battery",
                                          "csrf_token": token})
        board = client.get("/admin/gaps")
        assert board.status_code == 200, "logged in: the rest of the admin works on a replica"
        token = re.search(r'name="csrf_token" value="([^"]+)"', board.text).group(1)
        for path in ("/admin/articles", "/admin/articles/new", "/admin/articles/vpn-connect/edit"):
            page = client.get(path)
            assert page.status_code == 409, path
            assert "edited and indexed on the publisher" in page.text and f"{SOURCE}/admin/articles" in page.text
        saved = client.post("/admin/articles/new", data={"csrf_token": token, "action": "save", "title": "Bike lockers",
                                                         "slug": "bike-lockers", "body": "Ask reception."})
        assert saved.status_code == 409
    assert {p.name: p.read_bytes() for p in articles.rglob("*") if p.is_file()} == before
    assert services["rebuilder"].builds == 0
